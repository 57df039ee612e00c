# Sourced by the integration tests (from the runfiles root): the built binaries, a scratch
# directory with the shipped model linked in, failure counting and the processes to kill.
ROOT=$PWD
SEARCH="$ROOT/search/search"
WORKER="$ROOT/workers/worker"
INSPECT="$ROOT/hashing/inspect"
SPEC="$ROOT/tests/data/small_experiment.textproto"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
pids=()
kill_started() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; }
trap kill_started EXIT

# enter_scratch NAME: makes $WORK (with data/ linked to the shipped model) the working directory.
enter_scratch() {
  WORK=$(mktemp -d "${TEST_TMPDIR:-/tmp}/$1.XXXXXX")
  ln -s "$ROOT/data" "$WORK/data"
  cd "$WORK" || exit 1
}

# finish: the failure count, and the exit status.
finish() {
  echo "$fails failures"
  [ "$fails" -eq 0 ]
}
