#!/usr/bin/python3
"""Checks a search database of the mlp_recipe domain against the independent reference.

    check_db.py DB PROTO_ROOT [N]

For up to N evaluated candidates (outcome MISS; default 12, spread over the search) it
recomputes val_loss and params with reference_recipe.py (written from TASK.md alone, never from
the example's code) and compares them with what the engine recorded: params exactly, val_loss
to 1e-9 relative when the reference calls the recipe stable (README.md). Every cache hit must
carry the objectives of an evaluated candidate with the same cache key. Exits 1 on a mismatch.
"""
import json
import os
import sqlite3
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import reference_recipe as ref  # noqa: E402


def main(db, proto_root, n=12):
    out = tempfile.mkdtemp()
    protos = [os.path.join("protos", f) for f in os.listdir(os.path.join(proto_root, "protos")) if f.endswith(".proto")]
    subprocess.run(["protoc", f"-I{proto_root}", f"--python_out={out}"] + protos, check=True)
    sys.path.insert(0, out)
    from protos import candidate_pb2

    con = sqlite3.connect(db)
    rows = con.execute("SELECT id, candidate, objectives FROM candidates WHERE outcome = 'MISS' ORDER BY id").fetchall()
    if not rows:
        print("no evaluated candidates")
        return 1
    step = max(1, len(rows) // n)
    failures = checked = 0
    for cid, blob, objectives in rows[::step][:n]:
        c = candidate_pb2.Candidate.FromString(blob)
        genes = {}
        for g in c.genes.genes:
            kind = g.WhichOneof("value")
            genes[g.name] = getattr(g, kind)
        recorded = json.loads(objectives)
        want = ref.evaluate(genes)
        stable = ref.evaluate(genes, sigmoid="tanh")
        is_stable = abs(stable["val_loss"] - want["val_loss"]) <= 1e-9 * max(1.0, abs(want["val_loss"]))
        rel = abs(recorded["val_loss"] - want["val_loss"]) / max(abs(want["val_loss"]), 1e-300)
        ok = recorded["params"] == want["params"] and (rel <= 1e-9 or not is_stable)
        checked += 1
        print(f"candidate {cid}: recorded val_loss {recorded['val_loss']:.12g} params {recorded['params']:g}; "
              f"reference {want['val_loss']:.12g} {want['params']}{'' if is_stable else ' (unstable recipe: not judged)'}"
              f"{'' if ok else '  MISMATCH'}")
        failures += not ok
    # Hits return an evaluated candidate's objectives.
    bad_hits = con.execute(
        "SELECT count(*) FROM candidates h WHERE h.outcome = 'HIT' AND NOT EXISTS (SELECT 1 FROM candidates m"
        " WHERE m.outcome = 'MISS' AND m.cache_key = h.cache_key AND m.objectives = h.objectives)").fetchone()[0]
    if bad_hits:
        print(f"{bad_hits} hits carry objectives no evaluated candidate of their key has")
        failures += 1
    print(f"{checked} evaluated candidates checked against the independent reference, {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 12))
