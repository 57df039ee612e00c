#!/usr/bin/python3
"""An external evaluator for `worker --mode=command`: one candidate per run.

Reads an EvaluateRequest in protobuf's canonical JSON mapping on stdin and prints an
EvaluateResponse in the same mapping on stdout. The metric is real but simple: the relative
error of fake-quantizing a fixed synthetic key tensor (numpy) with the candidate's first-layer
key quantizer (INT formats, symmetric or not, per token or per channel, with groups). It stands
in for whatever a user computes (a proxy score, a measurement on their own hardware, ...).

    bazel run //workers:worker -- --mode=command --command="/usr/bin/python3 $PWD/examples/python_evaluator/evaluate.py"
"""
import json
import math
import sys
import time

import numpy as np

HEAD_DIM = 64
TOKENS = 256


def key_tensor():
    """A deterministic tensor shaped like one head's keys, with outlier channels."""
    t = np.arange(TOKENS, dtype=np.float64)[:, None]
    c = np.arange(HEAD_DIM, dtype=np.float64)[None, :]
    scale = np.where(np.arange(HEAD_DIM) % 16 == 0, 4.0, 1.0)[None, :]
    return (np.sin(0.37 * t + 1.3 * c) * scale).astype(np.float32)


def fake_quantize(x, bits, symmetric, per_channel, group):
    """Quantize-dequantize x (tokens x channels) in groups; round half to even (np.rint)."""
    out = np.empty_like(x)
    if per_channel:
        blocks = [(slice(t0, min(t0 + group, x.shape[0])), slice(c, c + 1))
                  for c in range(x.shape[1]) for t0 in range(0, x.shape[0], group)]
    else:
        blocks = [(slice(t, t + 1), slice(c0, c0 + group))
                  for t in range(x.shape[0]) for c0 in range(0, x.shape[1], group)]
    for rows, cols in blocks:
        g = x[rows, cols].astype(np.float64)
        if symmetric:
            qmax = 2 ** (bits - 1) - 1
            scale = np.abs(g).max() / qmax
            q = np.clip(np.rint(g / scale), -qmax, qmax) if scale > 0 else np.zeros_like(g)
            out[rows, cols] = q * scale
        else:
            lo, hi = g.min(), g.max()
            scale = (hi - lo) / (2 ** bits - 1)
            q = np.clip(np.rint((g - lo) / scale), 0, 2 ** bits - 1) if scale > 0 else np.zeros_like(g)
            out[rows, cols] = q * scale + lo
    return out


def evaluate(request):
    """EvaluateRequest (dict, canonical JSON) -> EvaluateResponse (dict)."""
    start = time.time()
    candidate_id = request.get("candidateId", "0")
    layers = request.get("candidate", {}).get("genome", {}).get("layers", [])
    keys = layers[0].get("keys", {}) if layers else {}
    fmt = keys.get("format", "FP16")
    if fmt not in ("INT", "FP16"):
        return {"candidateId": candidate_id,
                "result": {"status": {"code": 3, "message": f"this example evaluates INT or FP16 keys, not {fmt}"}}}
    x = key_tensor()
    if fmt == "FP16":
        error, bits = 0.0, 16.0
    else:
        b = int(keys.get("bits", 4))
        symmetric = bool(keys.get("symmetric", False))
        per_channel = keys.get("axis", "PER_TOKEN") == "PER_CHANNEL"
        group = int(keys.get("groupSize", 0)) or (128 if per_channel else HEAD_DIM)
        q = fake_quantize(x, b, symmetric, per_channel, group)
        error = float(np.linalg.norm((q - x).astype(np.float64)) / np.linalg.norm(x.astype(np.float64)))
        bits = b + (16.0 if symmetric else 32.0) / group
    return {"candidateId": candidate_id,
            "result": {"status": {"code": 0},
                       "objectives": {"meanNll": error, "effectiveBits": bits, "perplexity": math.exp(error),
                                      "perplexityIncreasePercent": 100.0 * (math.exp(error) - 1.0)},
                       "costSeconds": time.time() - start,
                       "evaluatorVersion": "examples/python_evaluator"}}


def main():
    try:
        request = json.load(sys.stdin)
    except ValueError as e:
        print(f"evaluate.py: stdin is not JSON: {e}", file=sys.stderr)
        return 2
    json.dump(evaluate(request), sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
