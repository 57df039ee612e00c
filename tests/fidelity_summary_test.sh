#!/usr/bin/env bash
# tools/fidelity_summary.py (the tables of docs/BENCHMARKS.md "Multi-fidelity") on hand-made
# traces whose answers are worked out below by hand: the first row at or above the full
# search's final hypervolume gives the compute and time to reach it.
set -uo pipefail
source "$PWD/tests/test_lib.sh"
SUMMARY="$ROOT/tools/fidelity_summary.py"
enter_scratch fidelity_summary
mkdir out
head='seconds,evaluations,compute_full_evaluations,candidates,hypervolume,best_scalar,hit_rate'
# The full searches: 100 with the cache, 80 without, both at 160 of compute in 40 s.
printf '%s\n10,10,40,10,50,0,0\n40,40,160,40,100,0,0\n' "$head" > out/full-functional-1.csv
printf '%s\n10,10,40,10,40,0,0\n40,40,160,40,80,0,0\n' "$head" > out/full-none-1.csv
# both with the cache reaches 100 at 80 of compute, 12 s: shares 0.50 and 0.30.
printf '%s\n5,5,20,5,60,0,0\n12,12,80,12,100,0,0\n20,20,160,20,110,0,0\n' "$head" > out/both-functional-1.csv
# both without: 80 at 20 (0.12 of the compute, 5 s of 40: 0.12); the cached search's 100 at 40 (0.25).
printf '%s\n5,5,20,5,80,0,0\n10,10,40,10,100,0,0\n20,20,160,20,120,0,0\n' "$head" > out/both-none-1.csv
# the ladder alone never reaches 100.
printf '%s\n5,5,20,5,30,0,0\n20,20,160,20,99.5,0,0\n' "$head" > out/fidelity-functional-1.csv
/usr/bin/python3 "$SUMMARY" out > summary.txt 2>err.txt || fail "fidelity_summary.py: $(cat err.txt)"
want() { grep -qF -- "$1" summary.txt || fail "the summary lacks '$1': $(cat summary.txt)"; }
want "| both | functional | 1 | 100.0 | 160, 40 | 80.00 | 12 | 0.50 | 0.30 | 110.0 (160) | - |"
want "| both | none | 1 | 80.0 | 160, 40 | 20.00 | 5 | 0.12 | 0.12 | 120.0 (160) | 0.25 |"
want "| fidelity | functional | 1 | 100.0 | 160, 40 | not reached | - | - | - | 99.5 (160) | - |"
# Hypervolume at 40 / 80 / 160: the last row at or below each.
want "| functional | 1 | 50.0 / 50.0 / 100.0 | 30.0 / 30.0 / 99.5 | 60.0 / 100.0 / 110.0 |"
want "| none | 1 | 40.0 / 40.0 / 80.0 | - | 100.0 / 100.0 / 120.0 |"
# Bad input: a malformed trace is named with its line, a file of another kind with what it lacks.
mkdir bad && printf '%s\n10,10,forty,10,50,0,0\n' "$head" > bad/full-functional-1.csv
/usr/bin/python3 "$SUMMARY" bad >/dev/null 2>err.txt && fail "a malformed trace accepted"
grep -q "bad/full-functional-1.csv:2: not a trace row" err.txt || fail "malformed trace: $(cat err.txt)"
printf 'a,b\n1,2\n' > bad/full-functional-1.csv
/usr/bin/python3 "$SUMMARY" bad >/dev/null 2>err.txt && fail "a file without trace columns accepted"
grep -q "no column compute_full_evaluations, hypervolume, seconds" err.txt || fail "not a trace: $(cat err.txt)"
/usr/bin/python3 "$SUMMARY" nosuchdir >/dev/null 2>err.txt && fail "a missing OUT_DIR accepted"
grep -q "nosuchdir is not a directory" err.txt || fail "missing OUT_DIR: $(cat err.txt)"
/usr/bin/python3 "$SUMMARY" >/dev/null 2>err.txt && fail "no OUT_DIR accepted"
grep -q "usage" err.txt || fail "no usage line without OUT_DIR: $(cat err.txt)"
finish
