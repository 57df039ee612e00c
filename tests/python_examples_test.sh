#!/usr/bin/env bash
# The Python examples: evaluate.py against an independent reference; a C++ worker running it
# in command mode; a Python worker (grpcio) serving a search. Every recorded result is
# checked against the reference.
set -uo pipefail
source "$PWD/tests/test_lib.sh"
CHECK="$ROOT/tests/python_examples_check.py"
EVALUATE="$ROOT/examples/python_evaluator/evaluate.py"
PYWORKER="$ROOT/examples/python_worker/worker.py"
SPEC="$ROOT/examples/python_worker/int_keys.textproto"
enter_scratch python

/usr/bin/python3 "$CHECK" direct "$EVALUATE" || fail "evaluate.py disagrees with the reference"

# C++ worker, command mode.
"$WORKER" --listen=127.0.0.1:0 --port_file=cmd.port --mode=command --capacity=2 --name=cmd-worker \
  --command="/usr/bin/python3 $EVALUATE" >cmd.log 2>&1 &
pids+=($!)
for _ in $(seq 1 200); do [ -s cmd.port ] && break; sleep 0.05; done
"$SEARCH" --experiment="$SPEC" --db=cmd.db --workers="127.0.0.1:$(cat cmd.port)" --progress=none >cmd.out 2>cmd.err \
  || fail "search through the command worker: $(tail -3 cmd.err)"
/usr/bin/python3 "$CHECK" db cmd.db "$ROOT" || fail "command-mode results differ from the reference"

# Python worker.
/usr/bin/python3 "$PYWORKER" --listen=127.0.0.1:0 --port_file=py.port --proto_root="$ROOT" >py.log 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do [ -s py.port ] && break; sleep 0.05; done
[ -s py.port ] || fail "the Python worker did not start: $(cat py.log)"
"$SEARCH" --experiment="$SPEC" --db=py.db --workers="127.0.0.1:$(cat py.port)" --progress=none >py.out 2>py.err \
  || fail "search through the Python worker: $(tail -3 py.err)"
[ "$(sqlite3 py.db "SELECT count(*) FROM candidates WHERE outcome = 'MISS' AND worker = 'python-worker'")" -gt 0 ] \
  || fail "no evaluation came from the Python worker"
/usr/bin/python3 "$CHECK" db py.db "$ROOT" || fail "Python-worker results differ from the reference"

finish
