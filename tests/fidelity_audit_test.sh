#!/usr/bin/env bash
# //search:fidelity_audit (the evidence tool behind docs/BENCHMARKS.md's "what a promotion
# decision or the screen discarded") on a real multi-fidelity search: it evaluates in full
# exactly the configurations that stopped below the full evaluation, counts them against the
# database, and refuses databases it cannot audit.
set -uo pipefail
source "$PWD/tests/test_lib.sh"
AUDIT="$ROOT/search/fidelity_audit"
enter_scratch fidelity_audit

sed -e 's/^search {/search {\n  fidelity { eta: 3 rungs { windows: [0] } }/' \
    -e 's/^  eval_windows: .*/  eval_windows: [0, 1, 2]/' "$SPEC" > ladder.textproto
grep -q "eval_windows: \[0, 1, 2\]" ladder.textproto || fail "the test spec has no eval_windows line to widen"
"$SEARCH" --experiment=ladder.textproto --db=l.db --max_evaluations=6 --threads=1 --progress=none >/dev/null 2>run.err \
  || fail "multi-fidelity search: $(tail -3 run.err)"
"$AUDIT" --db=l.db --threads=1 > audit.txt 2>audit.err || fail "fidelity_audit: $(tail -3 audit.err)"
/usr/bin/python3 - audit.txt l.db <<'PY' || fail "the audit disagrees with the database: $(cat audit.txt)"
import re, sqlite3, sys
text = open(sys.argv[1]).read()
db = sqlite3.connect(sys.argv[2])
rows = db.execute("SELECT id, rung, outcome, cache_key FROM candidates WHERE mean_nll IS NOT NULL").fetchall()
full = {k for (_, r, _, k) in rows if r == 1}
stopped = {k for (_, r, o, k) in rows if r == 0 and o == "MISS"} - full
assert stopped, "no candidate stopped at rung 0: the test needs some"
m = re.search(r"(\d+) full evaluations; discarded \(evaluated now in full\): (\d+) below the full evaluation by a promotion decision, (\d+) by the probe screen", text)
assert m, text
assert int(m.group(1)) == len(full), (m.group(1), len(full))
assert int(m.group(2)) == len(stopped), (m.group(2), len(stopped))
assert int(m.group(3)) == 0
front = re.search(r"front of both: (\d+) configurations, (\d+) of them discarded by a promotion decision", text)
assert front and int(front.group(1)) >= 1 and int(front.group(2)) <= int(front.group(1)), text
ids = {i for (i, r, o, _) in rows if r == 0 and o == "MISS"}
named = [int(x) for x in re.findall(r"discarded candidate (\d+) would be on the front", text)]
assert len(named) == int(front.group(2)) and all(i in ids for i in named), (named, ids)
hv = re.search(r"hypervolume: ([\d.]+) of the search's full evaluations, ([\d.]+) with the discarded", text)
assert hv and float(hv.group(2)) >= float(hv.group(1)) > 0, text
assert (float(hv.group(2)) > float(hv.group(1))) == (len(named) > 0), text
PY

# Bad input: a search that discarded nothing, a missing database.
"$SEARCH" --experiment="$SPEC" --db=plain.db --max_evaluations=3 --progress=none >/dev/null 2>plain.err || fail "plain search"
"$AUDIT" --db=plain.db >/dev/null 2>err.txt; [ $? -eq 2 ] && grep -q "neither search.fidelity nor search.screen" err.txt \
  || fail "an audit of a single-fidelity search: $(cat err.txt)"
"$AUDIT" --db=missing.db >/dev/null 2>err.txt; [ $? -eq 2 ] || fail "an audit of a missing database: $(cat err.txt)"

finish
