#!/bin/bash
# Evidence for multi-fidelity search (docs/BENCHMARKS.md, "Multi-fidelity"): the default
# experiment at full fidelity (160 full evaluations) and with its fidelity ladder (rung 0
# scores evaluation window 0 of 4; eta 8, or ETA) at the same compute, each with and without
# functional deduplication, seeds 1-3, --threads=1, two
# searches at a time (each uses one core). Every run writes its database, report and trace
# (CSV: seconds, evaluations, compute, hypervolume) to OUT_DIR; tools/fidelity_summary.py
# OUT_DIR turns them into the tables. ETA=3 sets the ladder's eta, FIDELITY='fidelity { ... }'
# the whole ladder, MODES="fidelity" and DEDUPS="functional" run only those.
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
ladder=${FIDELITY:-"fidelity { eta: ${ETA:-8} rungs { windows: [0] } }"}
# The baseline is the full-fidelity default as it was before fidelities (160 full evaluations);
# the fidelity search gets the same compute.
grep -v '^  fidelity {' search/experiments/default.textproto | sed 's|^  max_evaluations: [0-9]*|  max_evaluations: 160|' > "$out/full.textproto"
sed "s|^  max_evaluations: [0-9]*|  max_evaluations: 160|" search/experiments/default.textproto |
  sed "s|^  fidelity {.*|  $ladder|" > "$out/fidelity.textproto"
grep -q '^  fidelity {' "$out/fidelity.textproto" || { echo "fidelity_evidence: no ladder in the default" >&2; exit 1; }
jobs=()
for seed in $seeds; do
  for dedup in ${DEDUPS:-functional none}; do
    for mode in ${MODES:-full fidelity}; do jobs+=("$mode $dedup $seed"); done
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
