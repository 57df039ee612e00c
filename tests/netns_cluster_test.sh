#!/usr/bin/env bash
# Workers on separate network namespaces (virtual hosts joined to this one by veth pairs):
# the search reaches them across real interfaces, not loopback. Needs root (CAP_NET_ADMIN);
# otherwise it is skipped, saying why.
set -uo pipefail
ROOT=$PWD
SEARCH="$ROOT/search/search"
WORKER="$ROOT/workers/worker"
SPEC="$ROOT/tests/data/small_experiment.textproto"
if [ "$(id -u)" -ne 0 ]; then
  echo "SKIPPED: network namespaces need root (running as uid $(id -u))"
  exit 0
fi
tag=$$
if ! ip netns add "fec${tag}a" 2>/dev/null; then
  echo "SKIPPED: cannot create network namespaces here (no CAP_NET_ADMIN in this sandbox)"
  exit 0
fi
WORK=$(mktemp -d "${TEST_TMPDIR:-/tmp}/netns.XXXXXX")
ln -s "$ROOT/data" "$WORK/data"
cd "$WORK"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  for h in a b; do ip netns del "fec${tag}$h" 2>/dev/null; ip link del "fv${tag}$h" 2>/dev/null; done
}
trap cleanup EXIT
ip netns add "fec${tag}b"
# `ip netns exec` remounts /sys, which a chroot whose / is not a mount point refuses.
if ! why=$(ip netns exec "fec${tag}a" true 2>&1); then
  echo "SKIPPED: cannot run a process in a network namespace here ($why)"
  exit 0
fi
targets=()
subnet=$(( (tag % 200) + 20 ))
i=0
for h in a b; do
  i=$((i + 1))
  ns="fec${tag}$h"; host="fv${tag}$h"; peer="fp${tag}$h"
  ip link add "$host" type veth peer name "$peer" || { echo "FAIL: veth"; exit 1; }
  ip link set "$peer" netns "$ns"
  ip addr add "10.$subnet.$i.1/24" dev "$host"
  ip link set "$host" up
  ip netns exec "$ns" ip addr add "10.$subnet.$i.2/24" dev "$peer"
  ip netns exec "$ns" ip link set "$peer" up
  ip netns exec "$ns" ip link set lo up
  ip netns exec "$ns" "$WORKER" --listen="10.$subnet.$i.2:50051" --name="host-$h" --experiment="$SPEC" >"w$h.log" 2>&1 &
  pids+=($!)
  targets+=("10.$subnet.$i.2:50051")
done
# The namespaces cannot reach 127.0.0.1 of this one: the workers are only reachable over veth.
for _ in $(seq 1 600); do grep -q serving wa.log && grep -q serving wb.log && break; sleep 0.05; done
for h in a b; do
  grep -q serving "w$h.log" || { echo "FAIL: worker host-$h did not start in 30 s:"; cat "w$h.log"; exit 1; }
done
timeout 300 "$SEARCH" --experiment="$SPEC" --db=n.db --workers="$(IFS=,; echo "${targets[*]}")" --max_evaluations=12 --progress=none \
  >search.out 2>search.err || { echo "FAIL: search across namespaces (exit $?): $(tail -5 search.err)"; exit 1; }
workers=$(sqlite3 n.db "SELECT count(DISTINCT worker) FROM candidates WHERE outcome = 'MISS'")
[ "$workers" = 2 ] || { echo "FAIL: evaluations came from $workers hosts, want 2"; exit 1; }
[ "$(sqlite3 n.db "SELECT count(*) FROM candidates WHERE outcome = 'MISS'")" = 12 ] || { echo "FAIL: evaluations"; exit 1; }
echo "search over 2 virtual hosts: ok"; sqlite3 n.db "SELECT worker, count(*) FROM candidates WHERE outcome = 'MISS' GROUP BY worker"
