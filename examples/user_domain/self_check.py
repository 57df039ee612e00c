#!/usr/bin/python3
"""Self-check of the `mlp_recipe` example domain; exits 1 if any check fails.

Checks: the spec (mlp_recipe.textproto) declares the genes recipe.py validates; the protocol
round trip through evaluate.py and probe.py (subprocesses: responses equal the in-process
results, invalid genes -> the error response with exit 0, malformed requests -> exit 2 and a
message on stderr); every intended equivalence gives identical probe outputs and identical
objectives; non-equivalent recipes give different probe outputs even as float32 (and one
known false hit of the short probe still is one); the probe is
deterministic; invalid genes raise GeneError; the probe costs under 5 % of its evaluation.

    /usr/bin/python3 examples/user_domain/self_check.py      (about 15 s on one core)
"""
import json
import os
import re
import subprocess
import sys
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import recipe  # noqa: E402

PROTOCOL = recipe.PROTOCOL
BASE = {"hidden": 16, "depth": 2, "activation": "relu", "optimizer": "sgd", "lr": 0.05,
        "weight_decay": "1e-3", "decay_kind": "l2", "epochs": 100, "batch": "32",
        "shuffle": "yes", "init_seed": 1, "grad_clip": "none"}
FAILURES = []


def check(ok, what):
    """Record and print one check."""
    print(f"{'ok  ' if ok else 'FAIL'} {what}")
    if not ok:
        FAILURES.append(what)


def variant(**changes):
    """BASE with genes changed (a value of None removes the gene)."""
    g = dict(BASE)
    for k, v in changes.items():
        if v is None:
            g.pop(k, None)
        else:
            g[k] = v
    return g


def run(script, request_text):
    """(exit code, parsed stdout or None, stderr) of one command run."""
    p = subprocess.run([sys.executable, os.path.join(HERE, script)], input=request_text,
                       capture_output=True, text=True, timeout=120)
    try:
        out = json.loads(p.stdout) if p.stdout.strip() else None
    except ValueError:
        out = "not JSON: " + p.stdout
    return p.returncode, out, p.stderr


def request(kind, genes):
    """A protocol request as JSON text."""
    r = {"protocol": PROTOCOL, "kind": kind, "domain": recipe.DOMAIN, "genes": genes}
    if kind == "evaluate":
        r.update(candidate_id=17, attempt=1)
    return json.dumps(r)


def check_spec():
    """The textproto declares exactly recipe.GENES, in order, with the same values."""
    text = open(os.path.join(HERE, "mlp_recipe.textproto")).read()
    names = re.findall(r'genes \{ name: "(\w+)"', text)
    check(names == [g[0] for g in recipe.GENES], f"spec genes in declaration order: {names}")
    for name, kind, spec, cond in recipe.GENES:
        line = re.search(r'genes \{ name: "%s".*' % name, text).group(0)
        if kind == "cat":
            values = re.search(r"values: \[([^\]]*)\]", line).group(1)
            ok = [v.strip().strip('"') for v in values.split(",")] == list(spec)
        elif kind == "int":
            nums = dict(re.findall(r"(min|max|step): (\d+)", line))
            ok = (int(nums["min"]), int(nums["max"]), int(nums.get("step", 1))) == spec
        else:
            nums = dict(re.findall(r"(min|max): ([\d.e-]+)", line))
            ok = (float(nums["min"]), float(nums["max"])) == spec and "scale: LOG" in line
        has_cond = "active_if" in line
        ok = ok and has_cond == (cond is not None)
        if cond:
            ok = ok and f'active_if {{ gene: "{cond[0]}" values: ["{cond[1][0]}"] }}' in line
        check(ok, f"spec gene {name} matches recipe.GENES")


def check_protocol():
    """Round trips through the two command-line programs."""
    g = variant(epochs=50)
    rc, out, err = run("evaluate.py", request("evaluate", g))
    want = recipe.evaluate(g)
    check(rc == 0 and isinstance(out, dict) and out.get("protocol") == PROTOCOL
          and out.get("objectives") == want and isinstance(out["objectives"]["params"], int)
          and out.get("cost_seconds", -1) > 0,
          f"evaluate.py answers objectives {want} and cost_seconds (rc {rc}, {err.strip()[-200:]})")
    rc, out, err = run("probe.py", request("probe", g))
    check(rc == 0 and isinstance(out, dict) and out.get("outputs") == recipe.probe(g)
          and set(out) == {"protocol", "outputs"},
          f"probe.py answers the in-process probe outputs (rc {rc}, {err.strip()[-200:]})")
    rc2, out2, _ = run("probe.py", request("probe", g))
    check(rc2 == 0 and out2 == out, "probe.py twice: identical outputs")
    for script, kind in (("evaluate.py", "evaluate"), ("probe.py", "probe")):
        bad = variant(optimizer="sgd", momentum="0.5")     # inactive gene present
        rc, out, err = run(script, request(kind, bad))
        check(rc == 0 and isinstance(out, dict) and set(out) == {"protocol", "error"}
              and "momentum" in out["error"],
              f"{script}: inactive gene -> error response, exit 0 ({out})")
        rc, out, err = run(script, request(kind, variant(hidden=66)))
        check(rc == 0 and isinstance(out, dict) and "error" in out,
              f"{script}: out-of-range gene -> error response ({out})")
        other = "probe" if kind == "evaluate" else "evaluate"
        for why, text in (("not JSON", "{nope"), ("a JSON array", "[1]"),
                          ("wrong protocol", request(kind, BASE).replace(PROTOCOL, "v0")),
                          ("wrong kind", request(other, BASE)),
                          ("no genes", json.dumps({"protocol": PROTOCOL, "kind": kind}))):
            rc, out, err = run(script, text)
            check(rc == 2 and out is None and err.strip() != "",
                  f"{script}: malformed request ({why}) -> exit 2, stderr {err.strip()[:70]!r}")


EQUIVALENT = [
    ("momentum 0 == sgd",
     variant(optimizer="momentum", momentum="0"), variant(optimizer="sgd")),
    ("momentum 0 == sgd (clip 1, decoupled decay, full batch)",
     variant(optimizer="momentum", momentum="0", grad_clip="1", decay_kind="decoupled", batch="512"),
     variant(optimizer="sgd", grad_clip="1", decay_kind="decoupled", batch="512")),
    ("leaky_relu slope 0 == relu (sgd)",
     variant(activation="leaky_relu", negative_slope="0"), variant(activation="relu")),
    ("leaky_relu slope 0 == relu (adam, depth 3)",
     variant(activation="leaky_relu", negative_slope="0", optimizer="adam", lr=0.01, depth=3),
     variant(activation="relu", optimizer="adam", lr=0.01, depth=3)),
    ("weight_decay 0: l2 == decoupled (adam)",
     variant(weight_decay="0", decay_kind="l2", optimizer="adam", lr=0.01),
     variant(weight_decay="0", decay_kind="decoupled", optimizer="adam", lr=0.01)),
    ("weight_decay 0: l2 == decoupled (momentum 0.9)",
     variant(weight_decay="0", decay_kind="l2", optimizer="momentum", momentum="0.9"),
     variant(weight_decay="0", decay_kind="decoupled", optimizer="momentum", momentum="0.9")),
    ("full batch: shuffle yes == no",
     variant(batch="512", shuffle="yes", epochs=200), variant(batch="512", shuffle="no", epochs=200)),
    ("grad_clip 100 == none (never triggers here)",
     variant(grad_clip="100", optimizer="adam", lr=0.01),
     variant(grad_clip="none", optimizer="adam", lr=0.01)),
]

DIFFERENT = [
    ("momentum 0.5 != sgd", variant(optimizer="momentum", momentum="0.5"), variant(optimizer="sgd")),
    ("leaky_relu 0.01 != relu", variant(activation="leaky_relu", negative_slope="0.01"), BASE),
    ("weight_decay 1e-3: l2 != decoupled (adam)",
     variant(optimizer="adam", lr=0.01), variant(optimizer="adam", lr=0.01, decay_kind="decoupled")),
    ("weight_decay 1e-4 != 0 (adam)",
     variant(optimizer="adam", lr=0.01, weight_decay="1e-4"),
     variant(optimizer="adam", lr=0.01, weight_decay="0")),
    ("mini-batch: shuffle yes != no", BASE, variant(shuffle="no")),
    ("batch 32 != 512", BASE, variant(batch="512")),
    ("epochs 100 != 150", BASE, variant(epochs=150)),
    ("init_seed 1 != 2", BASE, variant(init_seed=2)),
    ("grad_clip 1 != none", variant(grad_clip="1", lr=0.5), variant(grad_clip="none", lr=0.5)),
    ("lr 0.05 != 0.0505", BASE, variant(lr=0.0505)),
    ("tanh != relu", variant(activation="tanh"), BASE),
    ("hidden 16 != 20", BASE, variant(hidden=20)),
]


def check_equivalences():
    """Intended equivalences: identical probe and objectives; others: different probe."""
    for what, a, b in EQUIVALENT:
        pa, pb = recipe.probe(a), recipe.probe(b)
        ea, eb = recipe.evaluate(a), recipe.evaluate(b)
        check(pa == pb and ea == eb, f"{what}: probe identical ({len(pa)} outputs), objectives "
              f"identical {ea}" + ("" if ea == eb else f" vs {eb}"))
    for what, a, b in DIFFERENT:
        pa = np.array(recipe.probe(a), dtype=np.float32)
        pb = np.array(recipe.probe(b), dtype=np.float32)
        check(pa.shape != pb.shape or not np.array_equal(pa, pb),
              f"{what}: probe outputs differ as float32")
    # A known false hit of the short probe: clipping at 100 never triggers on the probe set but
    # does in the evaluation (Adam at lr 0.72, full batch, depth 3), so the cache would wrongly
    # share one evaluation between these two recipes.
    fh = {"hidden": 28, "depth": 3, "activation": "leaky_relu", "negative_slope": "0.01",
          "optimizer": "adam", "lr": 0.717472852979516, "weight_decay": "0", "decay_kind": "l2",
          "epochs": 100, "batch": "512", "shuffle": "no", "init_seed": 3, "grad_clip": "none"}
    fh100 = dict(fh, grad_clip="100")
    ea, eb = recipe.evaluate(fh), recipe.evaluate(fh100)
    check(recipe.probe(fh) == recipe.probe(fh100) and ea != eb,
          f"known false hit reproduced: grad_clip none vs 100 probe identical, val_loss "
          f"{ea['val_loss']:.4f} vs {eb['val_loss']:.4f}")
    a = variant(decay_kind="l2", lr=0.2)
    b = variant(decay_kind="decoupled", lr=0.2)
    la, lb = recipe.evaluate(a)["val_loss"], recipe.evaluate(b)["val_loss"]
    same32 = np.array_equal(np.float32(recipe.probe(a)), np.float32(recipe.probe(b)))
    check(abs(la - lb) <= 1e-9 * la, f"near-equivalence sgd l2 vs decoupled: val_loss {la!r} vs "
          f"{lb!r} (probe equal as float32: {same32})")


def check_determinism_and_cost():
    """The probe twice gives the same list; probe time < 5 % of evaluation time."""
    for g in (BASE, variant(optimizer="adam", lr=0.3, depth=3, hidden=32, batch="512")):
        check(recipe.probe(g) == recipe.probe(dict(g)),
              f"probe deterministic ({g['optimizer']}, batch {g['batch']})")
    for g in (BASE, variant(optimizer="adam", lr=0.01, depth=3, hidden=32, batch="512", epochs=50)):
        tp = min(_timed(recipe.probe, g) for _ in range(3))
        te = min(_timed(recipe.evaluate, g) for _ in range(2))
        check(tp < 0.05 * te, f"probe {tp * 1e3:.1f} ms < 5 % of evaluation {te * 1e3:.0f} ms "
              f"({100 * tp / te:.1f} %, batch {g['batch']}, epochs {g['epochs']})")


def _timed(fn, g):
    start = time.perf_counter()
    fn(g)
    return time.perf_counter() - start


def check_validation():
    """Each kind of invalid gene dict raises GeneError."""
    cases = [
        ("unknown gene", variant(dropout=0.1)),
        ("missing gene", variant(lr=None)),
        ("int as string", variant(hidden="16")),
        ("bool as int", variant(depth=True)),
        ("non-integral int", variant(hidden=16.5)),
        ("int off the step", variant(hidden=18)),
        ("int out of range", variant(epochs=350)),
        ("float out of range", variant(lr=2.0)),
        ("float as string", variant(lr="0.1")),
        ("categorical not a value", variant(activation="gelu")),
        ("categorical as number", variant(weight_decay=0)),
        ("inactive gene present", variant(negative_slope="0.1")),
        ("active conditional missing", variant(optimizer="momentum")),
        ("genes not an object", ["hidden", 16]),
    ]
    for what, g in cases:
        try:
            recipe.validate(g)
            check(False, f"invalid genes rejected: {what}")
        except recipe.GeneError as e:
            check(True, f"invalid genes rejected: {what} ({e})")
    check(recipe.validate(variant(hidden=16.0))["hidden"] == 16, "integral float 16.0 accepted as int 16")
    check(recipe.validate(variant(lr=1))["lr"] == 1.0, "integer 1 accepted for float gene lr")


def main():
    check_spec()
    check_validation()
    check_protocol()
    check_equivalences()
    check_determinism_and_cost()
    print(f"{len(FAILURES)} failure(s)" if FAILURES else "all checks passed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
