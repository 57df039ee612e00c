#!/usr/bin/python3
"""Checks the Python examples' answers against an independent computation.

    python_examples_check.py direct EVALUATE_PY
        runs evaluate.py on a set of requests and compares with the pure-Python reference
    python_examples_check.py db DB PROTO_ROOT
        decodes every evaluated candidate of a search database and compares its recorded
        objectives with the reference

The reference below is written without numpy (plain Python floats, round-half-even), so it
shares no code with the examples.
"""
import json
import math
import os
import sqlite3
import struct
import subprocess
import sys
import tempfile

HEAD_DIM, TOKENS = 64, 256


def f32(v):
    return struct.unpack("f", struct.pack("f", v))[0]


def tensor():
    return [[f32(math.sin(0.37 * t + 1.3 * c) * (4.0 if c % 16 == 0 else 1.0)) for c in range(HEAD_DIM)]
            for t in range(TOKENS)]


def reference(keys):
    """(relative error, effective bits) of the example's metric for one key config (dict)."""
    fmt = keys.get("format", "FP16")
    if fmt == "FP16":
        return 0.0, 16.0
    bits = int(keys.get("bits", 4))
    sym = bool(keys.get("symmetric", False))
    per_channel = keys.get("axis", "PER_TOKEN") == "PER_CHANNEL"
    group = int(keys.get("groupSize", 0)) or (128 if per_channel else HEAD_DIM)
    x = tensor()
    err2 = norm2 = 0.0
    groups = []
    if per_channel:
        for c in range(HEAD_DIM):
            for t0 in range(0, TOKENS, group):
                groups.append([(t, c) for t in range(t0, min(t0 + group, TOKENS))])
    else:
        for t in range(TOKENS):
            for c0 in range(0, HEAD_DIM, group):
                groups.append([(t, c) for c in range(c0, c0 + group)])
    for g in groups:
        vals = [x[t][c] for t, c in g]
        if sym:
            qmax = 2 ** (bits - 1) - 1
            scale = max(abs(v) for v in vals) / qmax
            deq = [max(-qmax, min(qmax, round(v / scale))) * scale if scale > 0 else 0.0 for v in vals]
        else:
            lo, hi = min(vals), max(vals)
            scale = (hi - lo) / (2 ** bits - 1)
            deq = [max(0, min(2 ** bits - 1, round((v - lo) / scale))) * scale + lo if scale > 0 else lo for v in vals]
        for v, d in zip(vals, deq):
            err2 += (f32(d) - v) ** 2
            norm2 += v * v
    return math.sqrt(err2) / math.sqrt(norm2), bits + (16.0 if sym else 32.0) / group


def close(a, b):
    return abs(a - b) <= 1e-6 * max(1.0, abs(b))


def direct(evaluate_py):
    configs = [{"format": "FP16"}, {"format": "INT", "bits": 2}, {"format": "INT", "bits": 3, "symmetric": True},
               {"format": "INT", "bits": 4, "axis": "PER_CHANNEL", "groupSize": 32},
               {"format": "INT", "bits": 8, "groupSize": 16}, {"format": "INT", "bits": 2, "axis": "PER_CHANNEL"}]
    failures = 0
    for i, keys in enumerate(configs):
        request = {"candidateId": str(i), "candidate": {"genome": {"layers": [{"keys": keys}]}}}
        out = subprocess.run(["/usr/bin/python3", evaluate_py], input=json.dumps(request), capture_output=True,
                             text=True, check=True).stdout
        got = json.loads(out)["result"]["objectives"]
        err, bits = reference(keys)
        ok = close(got.get("meanNll", 0.0), err) and close(got["effectiveBits"], bits)
        print(f"{keys}: example {got.get('meanNll', 0.0):.9f} / {got['effectiveBits']} bits, "
              f"reference {err:.9f} / {bits} bits {'ok' if ok else 'MISMATCH'}")
        failures += not ok
    bad = subprocess.run(["/usr/bin/python3", evaluate_py], input=json.dumps(
        {"candidateId": "9", "candidate": {"genome": {"layers": [{"keys": {"format": "NUQ"}}]}}}),
        capture_output=True, text=True, check=True).stdout
    if json.loads(bad)["result"]["status"]["code"] != 3:
        print("unsupported format not reported as INVALID_ARGUMENT")
        failures += 1
    return failures


def from_db(db, proto_root):
    out = tempfile.mkdtemp()
    protos = [os.path.join("protos", f) for f in os.listdir(os.path.join(proto_root, "protos")) if f.endswith(".proto")]
    subprocess.run(["protoc", f"-I{proto_root}", f"--python_out={out}"] + protos, check=True)
    sys.path.insert(0, out)
    from protos import candidate_pb2
    from google.protobuf import json_format
    rows = sqlite3.connect(db).execute(
        "SELECT id, candidate, mean_nll, effective_bits, worker FROM candidates WHERE outcome = 'MISS'").fetchall()
    failures = 0
    for cid, blob, nll, bits, worker in rows:
        c = candidate_pb2.Candidate.FromString(blob)
        layers = json_format.MessageToDict(c).get("genome", {}).get("layers", [])
        keys = layers[0].get("keys", {}) if layers else {}
        err, ref_bits = reference(keys)
        if not (close(nll, err) and close(bits, ref_bits)):
            print(f"candidate {cid} from {worker}: recorded {nll} / {bits}, reference {err} / {ref_bits}")
            failures += 1
    print(f"{len(rows)} evaluated candidates checked against the reference, {failures} mismatched")
    return failures if rows else 1


if __name__ == "__main__":
    if sys.argv[1] == "direct":
        sys.exit(1 if direct(sys.argv[2]) else 0)
    sys.exit(1 if from_db(sys.argv[2], sys.argv[3]) else 0)
