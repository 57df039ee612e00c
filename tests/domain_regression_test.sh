#!/usr/bin/env bash
# The domain interface changed no behaviour: with --threads=1 and the recorded seed, an
# experiment records the same candidates, in the same order, with the same hashes, outcomes
# and objectives as a database recorded before the refactor (tests/data/pre_domain); and that
# older database still opens, resumes and is inspected.
# Usage: domain_regression_test.sh EXPERIMENT SEED
set -uo pipefail
source "$PWD/tests/test_lib.sh"
EXP=$1 SEED=$2
OLD="$ROOT/tests/data/pre_domain/$EXP-seed$SEED.db"
enter_scratch "regression-$EXP-$SEED"
[ -f "$OLD" ] || { echo "FAIL: $OLD is missing"; exit 1; }

# The recordings are of full-fidelity searches with random initial populations of 24: the
# default's fidelity ladder and probe screen (added since) are left out, and its population
# (16 since) is set back to the recorded one.
grep -v '^  fidelity {' "$ROOT/search/experiments/$EXP.textproto" | grep -v '^  screen {' > "$EXP.textproto"
[ "$EXP" = default ] && sed -i 's|^  population_size: [0-9]*$|  population_size: 24|' "$EXP.textproto"
grep -q '^  population_size: 24$' "$EXP.textproto" || fail "the recording's population of 24 is not in $EXP.textproto"
"$SEARCH" --experiment="$EXP.textproto" --threads=1 --seed="$SEED" --max_evaluations=48 \
  --db=new.db --report=/dev/null --progress=none >new.out 2>new.err || fail "search: $(tail -5 new.err)"

# Everything that does not depend on timing; results are compared by their objectives
# (the stored EvaluationResult also holds its cost in seconds).
q="SELECT id, parents, operation, hex(candidate), functional_hash, structural_hash, exact_hash, cache_key, outcome,
          quote(mean_nll), quote(effective_bits), quote(perplexity), quote(perplexity_increase_percent),
          quote(violation), worker, attempts, completion_seq, error FROM candidates ORDER BY id"
sqlite3 "$OLD" "$q" >old.rows
sqlite3 new.db "$q" >new.rows
[ -s old.rows ] || fail "no rows in $OLD"
if ! cmp -s old.rows new.rows; then
  fail "the search differs from the one recorded before the domain interface:"
  diff old.rows new.rows | head -20
fi
echo "$(wc -l <new.rows) candidates compared with $OLD"
# The new columns: every candidate names its domain, and its named objectives match the
# fields of the same name.
want_domain=kv-genome
[ "$EXP" = pipeline_graphs ] && want_domain=kv-pipeline
[ "$(sqlite3 new.db "SELECT DISTINCT domain FROM candidates")" = "$want_domain" ] || fail "candidates' domain is not $want_domain"
[ "$(sqlite3 new.db "SELECT domain FROM experiments")" = "$want_domain" ] || fail "experiment's domain is not $want_domain"
bad=$(sqlite3 new.db "SELECT count(*) FROM candidates WHERE objectives IS NOT NULL AND
      (json_extract(objectives, '$.mean_nll') != mean_nll OR json_extract(objectives, '$.effective_bits') != effective_bits)")
[ "$bad" = 0 ] || fail "$bad candidates' named objectives differ from their fields"

# The old database opens in inspect and resumes: 8 more evaluations, none repeated.
cp "$OLD" old.db
"$INSPECT" --db=old.db stats >stats.out 2>stats.err || fail "inspect stats on the old database: $(cat stats.err)"
grep -q "entries" stats.out || fail "inspect stats printed no entries: $(cat stats.out)"
"$INSPECT" --db=old.db top 3 >top.out 2>top.err || fail "inspect top on the old database: $(cat top.err)"
grep -q "mean_nll" top.out || fail "inspect top shows no objectives of the old entries: $(cat top.out)"
before=$(sqlite3 old.db "SELECT count(*) FROM candidates WHERE outcome = 'MISS'")
last_old=$(sqlite3 old.db "SELECT max(id) FROM candidates")
"$SEARCH" --threads=1 --max_evaluations=56 \
  --db=old.db --resume --report=/dev/null --progress=none >resume.out 2>resume.err || fail "resume of the old database: $(tail -5 resume.err)"
after=$(sqlite3 old.db "SELECT count(*) FROM candidates WHERE outcome = 'MISS'")
[ "$before" = 48 ] && [ "$after" = 56 ] || fail "resume evaluated $before -> $after candidates (want 48 -> 56)"
dups=$(sqlite3 old.db "SELECT count(*) FROM (SELECT cache_key FROM candidates WHERE outcome = 'MISS' GROUP BY cache_key HAVING count(*) > 1)")
[ "$dups" = 0 ] || fail "resume evaluated $dups configurations twice"
[ "$(sqlite3 old.db "SELECT count(*) FROM candidates WHERE id > $last_old AND domain IS NOT '$want_domain'")" = 0 ] ||
  fail "rows added on resume lack their domain"
finish
