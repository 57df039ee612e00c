#!/usr/bin/env bash
# Reproduces the programs-domain evidence of docs/PROGRAMS.md section 7 (about 40 minutes on
# 2 cores, 2 searches at a time, up to 4 GiB each):
#   tools/programs_evidence.sh OUT_DIR [dedup|collisions|noise|restarts|all]
# dedup:      5 seeds x {functional, exact, none}, 500,000 candidates each, --threads=1
# restarts:   24 more seeds (6..29) x the three modes, 100,000 candidates each, as AutoML-Zero's
#             demo restarts short experiments until one succeeds (about 30 minutes more)
# collisions: false hits against mantissa bits and probe size on the seed-1 functional search
# noise:      tasks drawn anew per evaluation, FEC noise policies, 2 seeds x 200,000 candidates
set -euo pipefail
OUT=$(realpath -m "${1:?usage: tools/programs_evidence.sh OUT_DIR [dedup|collisions|noise|restarts|all]}")
WHAT=${2:-all}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
bazel build -c opt //search //search:programs_study >/dev/null
mkdir -p "$OUT"
cp -f bazel-bin/search/search bazel-bin/search/programs_study "$OUT/"
EXP="$ROOT/search/experiments/programs.textproto"
run() {  # NAME SPEC FLAGS...
  local name=$1 spec=$2; shift 2
  /usr/bin/time -f "%e s wall, %M KB max RSS" "$OUT/search" --experiment="$spec" --threads=1 --db="$OUT/$name.db" \
    --report="$OUT/$name.html" --progress=none "$@" >"$OUT/$name.out" 2>"$OUT/$name.err"
}
export -f run
export OUT EXP NOISE_CANDIDATES
if [ "$WHAT" = dedup ] || [ "$WHAT" = all ]; then
  for s in 1 2 3 4 5; do for d in functional exact none; do echo "$d $s"; done; done |
    xargs -P 2 -n 2 bash -c 'run "$0-$1" "$EXP" --seed="$1" --dedup="$0" --max_candidates=500000'
  "$OUT/programs_study" reach "$OUT"/functional-*.db "$OUT"/exact-*.db "$OUT"/none-*.db >"$OUT/reach.md"
fi
if [ "$WHAT" = collisions ] || [ "$WHAT" = all ]; then
  "$OUT/programs_study" collisions "$OUT/functional-1.db" --max_programs=20000 >"$OUT/collisions.md"
fi
if [ "$WHAT" = noise ] || [ "$WHAT" = all ]; then
  sed 's|^      first_seed: 1$|      first_seed: 1\n      resample_per_evaluation: true|' "$EXP" >"$OUT/noisy.textproto"
  policies=(
    "plain:"
    "aggregate5:max_num_evals: 5"
    "forget10:remove_probability: 0.1"
    "forget_every100:forget_every: 100"
  )
  for p in "${policies[@]}"; do
    name=${p%%:*} body=${p#*:}
    sed "s|  capacity: 1000000|  capacity: 1000000\n  $body|" "$OUT/noisy.textproto" >"$OUT/noisy-$name.textproto"
  done
  for s in 1 2; do
    for p in "${policies[@]}"; do echo "noisy-${p%%:*} $s"; done
    echo "noisy-none $s"
  done | xargs -P 2 -n 2 bash -c '
    if [ "$0" = noisy-none ]; then run "$0-$1" "$OUT/noisy.textproto" --seed="$1" --dedup=none --max_candidates=${NOISE_CANDIDATES:-200000};
    else run "$0-$1" "$OUT/$0.textproto" --seed="$1" --max_candidates=${NOISE_CANDIDATES:-200000}; fi'
  "$OUT/programs_study" reach "$OUT"/noisy-*.db >"$OUT/noise.md"
fi
if [ "$WHAT" = restarts ] || [ "$WHAT" = all ]; then
  for s in $(seq 6 29); do for d in functional exact none; do echo "$d $s"; done; done |
    xargs -P 2 -n 2 bash -c 'run "restart-$0-$1" "$EXP" --seed="$1" --dedup="$0" --max_candidates=100000'
  "$OUT/programs_study" reach "$OUT"/restart-functional-*.db "$OUT"/restart-exact-*.db "$OUT"/restart-none-*.db >"$OUT/restarts.md"
  python3 "$ROOT/tools/restart_cost.py" "$OUT/restarts.md" "$OUT" >"$OUT/restart_cost.md"
fi
echo "done: $OUT"
