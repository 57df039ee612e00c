#!/usr/bin/env bash
# A worker cluster on loopback: a search over 4 worker processes finishes and every recorded
# result equals the in-process evaluator's; kill -9 of a worker mid-search loses and repeats
# nothing; a worker added mid-search (through the target file) receives work; TLS and token
# rejection end to end.
set -uo pipefail
source "$PWD/tests/test_lib.sh"
REEVAL="$ROOT/tests/reevaluate"
REFLECT="$ROOT/tests/reflection_check.py"
enter_scratch cluster

start_worker() {  # name, extra flags...
  local name=$1; shift
  rm -f "$name.port"
  "$WORKER" --listen=127.0.0.1:0 --name="$name" --port_file="$name.port" --experiment="$SPEC" "$@" >"$name.log" 2>&1 &
  pids+=($!)
  eval "pid_$name=$!"
  for _ in $(seq 1 200); do [ -s "$name.port" ] && break; sleep 0.05; done
  [ -s "$name.port" ] || { fail "worker $name did not start: $(cat "$name.log")"; return 1; }
  echo "127.0.0.1:$(cat "$name.port")"
}

wait_for_count() {  # db, SQL count query, minimum: polls up to 20 s
  local n
  for _ in $(seq 1 400); do
    n=$(sqlite3 "$1" "$2" 2>/dev/null || echo 0)
    [ "${n:-0}" -ge "$3" ] && return 0
    sleep 0.05
  done
  return 1
}

# --- 4 workers, one killed, one added ---------------------------------------------------
: > workers.txt
for w in w1 w2 w3 w4; do start_worker "$w" >> workers.txt || exit 1; done
"$SEARCH" --experiment="$SPEC" --db=c.db --workers="file:$WORK/workers.txt" --max_evaluations=60 --progress=none \
  >search.out 2>search.err &
search_pid=$!
pids+=($search_pid)
wait_for_count c.db "SELECT count(*) FROM candidates WHERE outcome = 'MISS'" 8
kill -9 "$pid_w2"
start_worker w5 >> workers.txt || exit 1
wait $search_pid || fail "search over the cluster failed: $(tail -5 search.err)"
grep -q "Pareto front" search.out || fail "no front printed"
grep -q "worker .* (w2) lost" search.err || fail "the loss of w2 was not reported: $(grep worker search.err)"
grep -q "worker .* (w5) ready" search.err || fail "the worker that joined was not reported: $(grep worker search.err)"
[ "$(sqlite3 c.db "SELECT count(*) FROM candidates WHERE outcome = 'PENDING'")" = 0 ] || fail "pending candidates left"
[ "$(sqlite3 c.db "SELECT count(*) FROM candidates WHERE outcome IN ('MISS', 'PARTIAL_HIT')")" = 60 ] || \
  fail "evaluations: $(sqlite3 c.db "SELECT count(*) FROM candidates WHERE outcome = 'MISS'") (want 60)"
[ "$(sqlite3 c.db "SELECT count(*) FROM candidates WHERE outcome = 'FAILED'")" = 0 ] || fail "failed candidates"
dup=$(sqlite3 c.db "SELECT count(*) FROM (SELECT cache_key FROM candidates WHERE outcome = 'MISS' GROUP BY cache_key HAVING count(*) > 1)")
[ "$dup" = 0 ] || fail "$dup configurations evaluated twice"
[ "$(sqlite3 c.db "SELECT count(*) FROM candidates WHERE worker = 'w5'")" -gt 0 ] || fail "the worker added mid-search received no work"
echo "work per worker:"; sqlite3 c.db "SELECT worker, count(*) FROM candidates WHERE outcome = 'MISS' GROUP BY worker"
redispatched=$(sqlite3 c.db "SELECT count(*) FROM candidates WHERE attempts > 1")
echo "candidates dispatched more than once (in flight on the killed worker): $redispatched"
# Workers are kept busy, so the killed one had a candidate in flight: it must have been
# dispatched again (and, above, recorded once).
[ "$redispatched" -ge 1 ] || fail "no candidate was re-dispatched after kill -9 of a busy worker"
"$REEVAL" --db=c.db > reeval.out 2>&1 || fail "recorded results differ from in-process evaluation: $(tail -5 reeval.out)"
cat reeval.out

# --- SIGTERM: a worker finishes its evaluation in flight and exits; the search completes ---
start_worker g1 --shutdown_grace_seconds=20 > g1.addr || exit 1  # not in $(...): we need its pid
start_worker g2 > g2.addr || exit 1
g1=$(cat g1.addr) g2=$(cat g2.addr)
"$SEARCH" --experiment="$SPEC" --db=g.db --workers="$g1,$g2" --max_evaluations=24 --progress=none >g.out 2>g.err &
gsearch=$!
pids+=($gsearch)
wait_for_count g.db "SELECT count(*) FROM candidates WHERE outcome = 'MISS' AND worker = 'g1'" 2
kill -TERM "$pid_g1"
wait "$pid_g1"; g1rc=$?
[ "$g1rc" = 0 ] || fail "a worker sent SIGTERM exited with $g1rc: $(tail -3 g1.log)"
grep -q "signal 15: finishing" g1.log || fail "the worker did not log its graceful shutdown: $(tail -3 g1.log)"
grep -q "stopped after" g1.log || fail "the worker did not report what it served: $(tail -3 g1.log)"
wait $gsearch || fail "the search failed after a worker's SIGTERM: $(tail -3 g.err)"
[ "$(sqlite3 g.db "SELECT count(*) FROM candidates WHERE outcome IN ('FAILED', 'PENDING')")" = 0 ] || fail "candidates failed or were lost after SIGTERM"
[ "$(sqlite3 g.db "SELECT count(*) FROM candidates WHERE outcome = 'MISS'")" = 24 ] || fail "evaluations after SIGTERM: $(sqlite3 g.db "SELECT count(*) FROM candidates WHERE outcome = 'MISS'") (want 24)"

# --- Multi-fidelity over workers (worker protocol 2) -------------------------------------
# Rung 0 scores evaluation window 0 on a worker; a promotion sends only window 1. Every
# recorded result equals the in-process one at the rung it reached.
sed -e 's/eval_windows: \[0\]/eval_windows: [0, 1]/' -e 's/^  seed: 3$/  seed: 3\n  fidelity { eta: 2 rungs { windows: [0] } }/' \
  "$SPEC" > fid.textproto
grep -q "fidelity {" fid.textproto || fail "could not write the multi-fidelity spec"
f1=$(start_worker f1 --experiment=fid.textproto) || exit 1
f2=$(start_worker f2 --experiment=fid.textproto) || exit 1
"$SEARCH" --experiment=fid.textproto --db=f.db --workers="$f1,$f2" --max_evaluations=8 --progress=none >f.out 2>f.err \
  || fail "a multi-fidelity search over workers failed: $(tail -5 f.err)"
grep -q "scores window subsets (protocol 2)" f.err || fail "the workers' protocol was not reported: $(grep worker f.err)"
rung0=$(sqlite3 f.db "SELECT count(*) FROM candidates WHERE outcome = 'MISS' AND rung = 0")
rung1=$(sqlite3 f.db "SELECT count(*) FROM candidates WHERE outcome = 'MISS' AND rung = 1")
echo "multi-fidelity over workers: $rung0 candidates stopped at rung 0, $rung1 promoted to the full evaluation"
[ "$rung0" -gt 0 ] && [ "$rung1" -gt 0 ] || fail "want candidates at both rungs, got $rung0 and $rung1"
[ "$(sqlite3 f.db "SELECT count(*) FROM candidates WHERE outcome IN ('FAILED', 'PENDING')")" = 0 ] || fail "failed or pending candidates"
[ "$(sqlite3 f.db "SELECT count(*) FROM candidates WHERE outcome = 'MISS' AND worker NOT IN ('f1', 'f2')")" = 0 ] \
  || fail "results not from the workers: $(sqlite3 f.db "SELECT DISTINCT worker FROM candidates")"
"$REEVAL" --db=f.db > freeval.out 2>&1 || fail "multi-fidelity results over workers differ from in-process: $(tail -5 freeval.out)"
cat freeval.out
grep -q "([1-9][0-9]* below the full evaluation" freeval.out || fail "no rung-0 result was checked: $(cat freeval.out)"
# Workers that score whole evaluations only (a simulated worker here, like a protocol-1 one)
# get no window subsets: the search fails and says why instead of waiting.
s1=$(start_worker s1 --mode=simulated --simulate_seconds=0) || exit 1
timeout 120 "$SEARCH" --experiment=fid.textproto --db=s.db --workers="$s1" --max_evaluations=2 --progress=none >s.out 2>s.err
rc=$?
[ "$rc" = 1 ] || fail "a multi-fidelity search on a whole-evaluation worker exited $rc, want 1: $(tail -3 s.err)"
grep -q "no worker scores window subsets" s.err || fail "the refusal does not say why: $(tail -3 s.err)"

# --- TLS and token ------------------------------------------------------------------------
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca -keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=worker.test -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=DNS:worker.test,DNS:localhost\n' > ext.cnf
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf -out server.pem 2>/dev/null
echo "right-token" > token
echo "wrong-token" > wrong
secure=$(start_worker ws --tls_cert=server.pem --tls_key=server.key --auth_token_file=token) || exit 1
secure_spec() {  # token file
  cat "$SPEC"
  printf 'workers { targets: "%s" tls { ca_cert_path: "%s" server_name: "worker.test" } auth_token_file: "%s" deadline_seconds: 20 }\n' \
    "$secure" "$WORK/ca.pem" "$WORK/$1"
}
# Server reflection: listed on a plaintext worker; behind the token with TLS.
/usr/bin/python3 "$REFLECT" "$(head -1 workers.txt)" --expect=fecsearch.rpc.Evaluator --expect=grpc.health.v1.Health \
  || fail "reflection on a plaintext worker"
/usr/bin/python3 "$REFLECT" "$secure" --ca="$WORK/ca.pem" --server_name=worker.test --expect_code=UNAUTHENTICATED \
  || fail "reflection answered without the token over TLS"
/usr/bin/python3 "$REFLECT" "$secure" --ca="$WORK/ca.pem" --server_name=worker.test --token=right-token \
  --expect=fecsearch.rpc.Evaluator --expect=grpc.health.v1.Health || fail "reflection with the token over TLS"
secure_spec wrong > wrong.textproto
timeout 120 "$SEARCH" --experiment=wrong.textproto --db=t1.db --max_evaluations=3 --progress=none >t1.out 2>t1.err
rc=$?
[ "$rc" = 1 ] || fail "a search whose every evaluation is refused exited $rc, want 1"
[ "$(sqlite3 t1.db "SELECT count(*) FROM candidates WHERE outcome = 'MISS'")" = 0 ] || fail "a wrong token was accepted"
grep -q "stopped by an error: .*refused the credentials" t1.err || fail "the wrong-token failure does not say why: $(tail -3 t1.err)"
secure_spec token > right.textproto
"$SEARCH" --experiment=right.textproto --db=t2.db --max_evaluations=3 --progress=none >t2.out 2>t2.err || fail "TLS + token search: $(tail -3 t2.err)"
[ "$(sqlite3 t2.db "SELECT count(*) FROM candidates WHERE outcome = 'MISS' AND worker = 'ws'")" = 3 ] || fail "the TLS worker did not evaluate"
# A dns:/// target resolves to addresses; without server_name the certificate is checked
# against the name the target gave (where this system resolves localhost: not in a chroot).
if getent hosts localhost >/dev/null; then
  port=${secure##*:}
  { cat "$SPEC"
    printf 'workers { targets: "dns:///localhost:%s" tls { ca_cert_path: "%s" } auth_token_file: "%s" deadline_seconds: 20 }\n' \
      "$port" "$WORK/ca.pem" "$WORK/token"; } > dns.textproto
  timeout 120 "$SEARCH" --experiment=dns.textproto --db=t3.db --max_evaluations=2 --progress=none >t3.out 2>t3.err \
    || fail "TLS over a dns:/// target without server_name: $(tail -3 t3.err)"
fi

finish
