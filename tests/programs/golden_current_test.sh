#!/usr/bin/env bash
# The committed golden files are exactly what the reference interpreter writes.
set -euo pipefail
cd tests/programs
/usr/bin/python3 make_golden.py --check
