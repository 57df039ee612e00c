#!/bin/bash
# Evidence for multi-fidelity search (docs/BENCHMARKS.md, "Multi-fidelity"): today's
# full-fidelity default (160 full evaluations), the shipped default's fidelity ladder alone,
# its probe screen alone, and both, at the same compute (BUDGET, default 160), each with and
# without functional deduplication, seeds 1-3, --threads=1, two searches at a time (each uses
# one core). Every run writes its database, report and trace
# (CSV: seconds, evaluations, compute, hypervolume) to OUT_DIR; tools/fidelity_summary.py
# OUT_DIR turns them into the tables. FIDELITY='fidelity { ... }' and SCREEN='screen { ... }'
# replace the ladder and the screen, FULL_POP the baseline's population, MODES="fidelity both"
# and DEDUPS="functional" run only those.
#   tools/fidelity_evidence.sh OUT_DIR [SEEDS]
set -euo pipefail
out=${1:?usage: tools/fidelity_evidence.sh OUT_DIR [SEEDS]}
seeds=${2:-"1 2 3"}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bazel build //search >/dev/null 2>&1 || { echo "fidelity_evidence: bazel build //search failed" >&2; exit 1; }
mkdir -p "$out"
out=$(cd "$out" && pwd)
search="$root/bazel-bin/search/search"
ladder=${FIDELITY:-$(grep '^  fidelity {' search/experiments/default.textproto | sed 's/^ *//')}
[ -n "$ladder" ] || { echo "fidelity_evidence: no ladder in the default (set FIDELITY)" >&2; exit 1; }
budget=${BUDGET:-160}
screen=${SCREEN:-$(grep '^  screen {' search/experiments/default.textproto | sed 's/^ *//')}
[ -n "$screen" ] || screen='screen { }'
# full: today's full-fidelity default as it was before fidelities and the screen (population
# 24, 160 full evaluations); fidelity: the shipped default's ladder alone; screen: the shipped
# default's screen (search.screen) alone; both: the ladder and the screen. Every mode gets the
# same compute.
grep -v '^  fidelity {' search/experiments/default.textproto | grep -v '^  screen {' |
  sed "s|^  max_evaluations: [0-9]*|  max_evaluations: $budget|" |
  sed "s|^  population_size: [0-9]*|  population_size: ${FULL_POP:-24}|" > "$out/full.textproto"
grep -v '^  screen {' search/experiments/default.textproto | sed "s|^  max_evaluations: [0-9]*|  max_evaluations: $budget|" |
  sed "s|^  fidelity {.*|  $ladder|" > "$out/fidelity.textproto"
grep -v '^  fidelity {' "$out/fidelity.textproto" | sed "s|^  seed: \([0-9]*\)$|  seed: \1\n  $screen|" > "$out/screen.textproto"
sed "s|^  seed: \([0-9]*\)$|  seed: \1\n  $screen|" "$out/fidelity.textproto" > "$out/both.textproto"
grep -q '^  fidelity {' "$out/fidelity.textproto" || { echo "fidelity_evidence: no ladder written" >&2; exit 1; }
grep -q '^  screen {' "$out/both.textproto" || { echo "fidelity_evidence: no screen written" >&2; exit 1; }
jobs=()
for seed in $seeds; do
  for dedup in ${DEDUPS:-functional none}; do
    for mode in ${MODES:-full fidelity screen both}; do jobs+=("$mode $dedup $seed"); done
  done
done
run() {
  local mode=$1 dedup=$2 seed=$3 name="$1-$2-$3"
  rm -f "$out/$name.db" "$out/$name.db-wal" "$out/$name.db-shm"
  local start=$(date +%s.%N)
  "$search" --experiment="$out/$mode.textproto" --seed="$seed" --dedup="$dedup" --threads=1 --db="$out/$name.db" \
    --report="$out/$name.html" --trace_csv="$out/$name.csv" --progress=none >"$out/$name.out" 2>"$out/$name.err"
  echo "$name $(echo "$(date +%s.%N) - $start" | bc) s" | tee -a "$out/wall.txt"
}
export -f run
export out search
printf '%s\n' "${jobs[@]}" | xargs -P 2 -I{} bash -c 'run {}'
