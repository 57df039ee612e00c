#!/usr/bin/python3
"""The `mlp_recipe` domain's evaluate command (one candidate per run).

Reads an evaluate request (docs/DOMAINS.md, `fecsearch.domain.v1`) on stdin, trains the recipe in
its genes on the 512 seeded spiral points and prints
`{"protocol": ..., "objectives": {"val_loss": nats, "params": count}, "cost_seconds": s}`.
A candidate the domain rejects (unknown, missing, mistyped, out-of-range or inactive-but-present
gene) answers `{"protocol": ..., "error": "why"}` and exits 0; a malformed request (not JSON,
wrong protocol or kind, no genes object) prints the reason on stderr and exits 2.

    echo '{"protocol": "fecsearch.domain.v1", "kind": "evaluate", "genes": {...}}' | /usr/bin/python3 examples/user_domain/evaluate.py
"""
import os
import sys

# One BLAS thread: one core per evaluation, and sums whose order does not depend on the cores.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import recipe  # noqa: E402  (after the thread settings)

if __name__ == "__main__":
    sys.exit(recipe.main("evaluate", "evaluate.py"))
