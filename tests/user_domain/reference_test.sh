#!/usr/bin/env bash
# The mlp_recipe example's evaluate.py and probe.py agree with reference_recipe.py, written
# independently from TASK.md (README.md), on 20 recipes drawn with a fixed seed; and the
# reference reproduces TASK.md's own reference values.
set -uo pipefail
/usr/bin/python3 tests/user_domain/reference_recipe.py || { echo "FAIL: the reference does not reproduce TASK.md"; exit 1; }
/usr/bin/python3 tests/user_domain/compare.py examples/user_domain/evaluate.py examples/user_domain/probe.py 20
