#!/usr/bin/env bash
# //hashing:inspect on a real search database: every command, JSON validity, bad input, and a
# database that a running search is writing.
set -uo pipefail
source "$PWD/tests/test_lib.sh"
enter_scratch inspect

"$SEARCH" --experiment="$SPEC" --db=s.db --max_evaluations=16 --seed=11 --progress=none >/dev/null 2>run.err || fail "search: $(tail -3 run.err)"
"$SEARCH" --experiment="$SPEC" --db=s.db --max_evaluations=16 --seed=11 --progress=none >/dev/null 2>run2.err || fail "search 2: $(tail -3 run2.err)"

"$INSPECT" --db=s.db stats > stats.txt || fail "stats"
grep -q "^entries  *[1-9]" stats.txt || fail "stats lacks entries: $(cat stats.txt)"
grep -q "hit rate" stats.txt || fail "stats lacks the hit rate"
"$INSPECT" --db=s.db --json stats > stats.json || fail "stats --json"
/usr/bin/python3 - stats.json s.db <<'PY' || fail "stats --json disagrees with the database"
import json, sqlite3, sys
j = json.load(open(sys.argv[1]))
db = sqlite3.connect(sys.argv[2])
entries = db.execute("SELECT count(DISTINCT hash) FROM fec_cache").fetchone()[0]
assert j["entries"] == entries, (j["entries"], entries)
hits = db.execute("SELECT count(*) FROM candidates WHERE outcome = 'HIT'").fetchone()[0]
assert j["hits"] == hits, (j["hits"], hits)
misses = db.execute("SELECT count(*) FROM candidates WHERE outcome = 'MISS'").fetchone()[0]
assert j["misses"] == misses, (j["misses"], misses)
assert abs(j["hit_rate"] - hits / (hits + misses)) < 1e-9
assert len(j["experiments"]) == 2
PY

"$INSPECT" --db=s.db top 3 > top.txt || fail "top"
[ "$(wc -l < top.txt)" -le 4 ] || fail "top 3 printed more than 3 entries"
hash=$(sed -n 2p top.txt | cut -c1-32)
"$INSPECT" --db=s.db show "$hash" > show.txt || fail "show $hash"
grep -q "candidates computed this function" show.txt || fail "show lists no candidates: $(head -20 show.txt)"
grep -q "genome {" show.txt || fail "show prints no genome"
"$INSPECT" --db=s.db --json show "$hash" | /usr/bin/python3 -c 'import json,sys; j=json.load(sys.stdin); assert j["candidates"], j' \
  || fail "show --json"

"$INSPECT" --db=s.db export --format=csv > cache.csv || fail "export csv"
[ "$(($(wc -l < cache.csv) - 1))" = "$(sqlite3 s.db 'SELECT count(DISTINCT hash) FROM fec_cache')" ] || fail "csv rows != entries"
"$INSPECT" --db=s.db export --format=json | /usr/bin/python3 -c 'import json,sys; assert len(json.load(sys.stdin)) > 0' || fail "export json"
"$INSPECT" --db=s.db --json export | /usr/bin/python3 -c 'import json,sys; j=json.load(sys.stdin); assert j[0]["created"].endswith("Z"), j[0]' \
  || fail "export --json is not JSON with UTC times"

# Bad input: clear message, non-zero exit, no crash.
"$INSPECT" --db=s.db show nothex 2>err.txt; [ $? -eq 2 ] && grep -q "not a 32-digit hex hash" err.txt || fail "bad hash: $(cat err.txt)"
"$INSPECT" --db=missing.db stats 2>err.txt; [ $? -eq 2 ] && grep -q "missing.db" err.txt || fail "missing db: $(cat err.txt)"
head -c 3000 /dev/urandom > junk.db
"$INSPECT" --db=junk.db stats 2>err.txt; [ $? -eq 2 ] && grep -q "corrupt or not a SQLite database" err.txt || fail "junk db: $(cat err.txt)"
"$INSPECT" --db=s.db frobnicate 2>err.txt; [ $? -eq 2 ] || fail "unknown command accepted"
"$INSPECT" --db=s.db top -- -5 2>err.txt; [ $? -eq 2 ] && grep -q "not a positive number" err.txt || fail "top -5: $(cat err.txt)"

# A search with a predicted initial pool: the members not chosen are SCREENED rows, not
# candidates, and stats counts them apart.
sed 's/^search {/search {\n  screen { initial_pool: 12 skip: false }/' "$SPEC" > pool.textproto
"$SEARCH" --experiment=pool.textproto --db=pool.db --max_evaluations=8 --progress=none >/dev/null 2>pool.err \
  || fail "search with an initial pool: $(tail -3 pool.err)"
"$INSPECT" --db=pool.db --json stats > pool.json || fail "stats --json on the pool search"
"$INSPECT" --db=pool.db stats > pool.txt || fail "stats on the pool search"
/usr/bin/python3 - pool.json pool.db <<'PY' || fail "stats counts the pool's rows wrongly: $(cat pool.txt)"
import json, sqlite3, sys
e = json.load(open(sys.argv[1]))["experiments"][0]
db = sqlite3.connect(sys.argv[2])
pool = db.execute("SELECT count(*) FROM candidates WHERE operation = 'initial pool'").fetchone()[0]
rest = db.execute("SELECT count(*) FROM candidates WHERE operation != 'initial pool'").fetchone()[0]
assert pool == 12 - 6, pool  # the pool of 12 less the population of 6
assert e["initial_pool_not_chosen"] == pool, e
assert e["candidates"] == rest, (e, rest)
assert sum(e["outcomes"].values()) == rest, e
PY
grep -q "6 initial-pool members not chosen" pool.txt || fail "stats does not say how many pool members were passed over: $(cat pool.txt)"

# A multi-fidelity search: each entry says its rung; a lower rung's entry is labelled as such
# and `show` finds its candidates (they are recorded under the full-fidelity key).
sed -e 's/^search {/search {\n  fidelity { promotion: AT_ARRIVAL rungs { windows: [0] } }/' \
    -e 's/^  eval_windows: .*/  eval_windows: [0, 1, 2]/' "$SPEC" > ladder.textproto
grep -q "eval_windows: \[0, 1, 2\]" ladder.textproto || fail "the test spec has no eval_windows line to widen"
"$SEARCH" --experiment=ladder.textproto --db=ladder.db --max_evaluations=8 --progress=none >/dev/null 2>ladder.err \
  || fail "multi-fidelity search: $(tail -3 ladder.err)"
"$INSPECT" --db=ladder.db top 50 > ladder_top.txt || fail "top on the multi-fidelity search"
grep -q "fidelity rung" ladder_top.txt && grep -q " 0: 1 window " ladder_top.txt && grep -q " 1: 3 windows (full) " ladder_top.txt \
  || fail "top does not label the rungs: $(cat ladder_top.txt)"
grep -q "A rung below the last is a lower fidelity" ladder_top.txt || fail "top does not explain lower rungs"
"$INSPECT" --db=ladder.db export --format=csv > ladder.csv || fail "export on the multi-fidelity search"
low=$(/usr/bin/python3 - ladder.csv ladder.db <<'PY'
import csv, sqlite3, sys
rows = list(csv.DictReader(open(sys.argv[1])))
db = sqlite3.connect(sys.argv[2])
keys = {k for (k,) in db.execute("SELECT cache_key FROM candidates WHERE cache_key != ''")}
full = {k for (k,) in db.execute("SELECT cache_key FROM candidates WHERE rung = 1 AND cache_key != ''")}
assert rows and all(r["rung"] in ("0", "1") for r in rows), [r["rung"] for r in rows]
lower = [r for r in rows if r["rung"] == "0"]
assert lower, "no rung-0 entry: the test needs one"
assert all(r["fidelity"] == "1 window" and r["full_fidelity_hash"] in keys for r in lower), lower[0]
assert {r["hash"] for r in rows if r["rung"] == "1"} == full, "full-fidelity entries are not the promoted candidates' keys"
assert not any(r["hash"] in keys for r in lower), "a lower rung's entry under a candidate's own key"
print(lower[0]["hash"])
PY
) || fail "export's rung columns disagree with the database"
"$INSPECT" --db=ladder.db show "$low" > ladder_show.txt || fail "show $low"
grep -q "^fidelity  *rung 0 of 0..1, 1 window: a lower fidelity" ladder_show.txt && grep -q "candidates computed this function" ladder_show.txt \
  && grep -q "fidelity rung 0" ladder_show.txt || fail "show of a lower rung: $(head -3 ladder_show.txt)"
"$INSPECT" --db=ladder.db --json show "$low" | /usr/bin/python3 -c 'import json,sys; j=json.load(sys.stdin); assert j["rung"] == 0 and j["full_fidelity_hash"] and j["candidates"], j' \
  || fail "show --json of a lower rung"

# While a search writes.
"$SEARCH" --experiment="$SPEC" --db=live.db --max_evaluations=150 --progress=none >/dev/null 2>live.err &
pid=$!
ok=0
for _ in $(seq 1 400); do
  if "$INSPECT" --db=live.db stats >live.txt 2>/dev/null && grep -q "^entries  *[1-9]" live.txt; then
    # Only a read while the search still runs tests reading during writes.
    kill -0 $pid 2>/dev/null && ok=1
    break
  fi
  sleep 0.05
done
wait $pid || fail "the search failed while being inspected: $(tail -3 live.err)"
[ $ok = 1 ] || fail "inspect could not read the database while the search was writing it"

finish
