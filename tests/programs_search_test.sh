#!/usr/bin/env bash
# The programs domain (docs/PROGRAMS.md) through the real binaries: a search with the
# functional cache (hits above half, most of them not exact copies), the exact and no-cache
# modes, the report and inspect showing programs as code, kill -9 and --resume, a gRPC domain
# worker, the study tool, and bad specs each a clear error naming the field.
set -uo pipefail
source "$PWD/tests/test_lib.sh"
EXP="$ROOT/search/experiments/programs.textproto"
STUDY="$ROOT/search/programs_study"
enter_scratch programs
q() { sqlite3 "$WORK/$1" "$2"; }

# --- a search with functional deduplication ---------------------------------------------------
"$SEARCH" --experiment="$EXP" --db=f.db --report=f.html --max_candidates=20000 --threads=1 --progress=none \
  >f.out 2>f.err || fail "search: $(tail -5 f.err)"
[ "$(q f.db "SELECT DISTINCT domain FROM candidates")" = programs ] || fail "candidates' domain is not programs"
total=$(q f.db "SELECT count(*) FROM candidates")
hits=$(q f.db "SELECT count(*) FROM candidates WHERE outcome = 'HIT'")
[ "$total" = 20000 ] || fail "recorded $total candidates, want 20000"
[ $((hits * 2)) -gt "$total" ] || fail "hit rate $hits/$total is not above one half"
grep -q "functional equivalents" f.out || fail "no hit classes in the summary: $(cat f.out)"
equiv=$(sed -n 's/.* exact copies of an earlier candidate, \([0-9]*\) functional equivalents.*/\1/p' f.out)
[ "${equiv:-0}" -gt $((hits / 2)) ] || fail "functional equivalents ($equiv) are not most of the $hits hits"
grep -q "selection-task fitness" f.html || fail "the report does not show the program with its selection-task fitness"
grep -q "def Setup\|s1 = " f.html || fail "the report shows no program code"
"$INSPECT" --db=f.db stats >stats.out 2>&1 || fail "inspect stats: $(cat stats.out)"
key=$(q f.db "SELECT cache_key FROM candidates WHERE outcome = 'HIT' GROUP BY cache_key ORDER BY count(*) DESC LIMIT 1")
"$INSPECT" --db=f.db show "$key" >show.out 2>&1 || fail "inspect show: $(cat show.out)"
grep -q "program {" show.out && grep -q "fitness" show.out || fail "inspect show lacks the program or its fitness: $(head -20 show.out)"
grep -q "The program (selection-task fitness" show.out && grep -q "^  learn  " show.out || fail "inspect show does not show the program as code"
grep -q "only functional hashing finds this" show.out || fail "inspect show names no behaviour-only equivalence: $(grep -c candidate show.out) candidates"
"$STUDY" reach f.db >reach.out 2>reach.err || fail "programs_study reach: $(cat reach.err)"
grep -q "| f.db | 1 | functional | 1 | 20000 |" reach.out || fail "study row: $(cat reach.out)"

# --- exact and no deduplication: fewer hits, none -------------------------------------------
"$SEARCH" --experiment="$EXP" --db=e.db --report=/dev/null --max_candidates=5000 --threads=1 --dedup=exact --progress=none \
  >/dev/null 2>e.err || fail "exact: $(tail -3 e.err)"
"$SEARCH" --experiment="$EXP" --db=n.db --report=/dev/null --max_candidates=5000 --threads=1 --dedup=none --progress=none \
  >/dev/null 2>n.err || fail "none: $(tail -3 n.err)"
fhits=$(q f.db "SELECT count(*) FROM candidates WHERE outcome = 'HIT' AND id <= 5000")
ehits=$(q e.db "SELECT count(*) FROM candidates WHERE outcome = 'HIT'")
[ "$ehits" -lt "$fhits" ] || fail "exact dedup hit $ehits times in 5000, functional $fhits"
[ "$ehits" -gt 0 ] || fail "exact dedup found no copies (mutation_probability 0.9 makes 10% copies)"
[ "$(q n.db "SELECT count(*) FROM candidates WHERE outcome = 'HIT'")" = 0 ] || fail "--dedup=none recorded hits"

# --- --threads=1 is deterministic --------------------------------------------------------------
"$SEARCH" --experiment="$EXP" --db=f2.db --report=/dev/null --max_candidates=3000 --threads=1 --progress=none >/dev/null 2>&1
"$SEARCH" --experiment="$EXP" --db=f3.db --report=/dev/null --max_candidates=3000 --threads=1 --progress=none >/dev/null 2>&1
rows="SELECT id, hex(candidate), cache_key, outcome, objectives FROM candidates ORDER BY id"
[ "$(q f2.db "$rows" | md5sum)" = "$(q f3.db "$rows" | md5sum)" ] || fail "two --threads=1 runs differ"

# --- kill -9 and --resume ----------------------------------------------------------------------
"$SEARCH" --experiment="$EXP" --db=k.db --report=/dev/null --max_candidates=400000 --threads=1 --progress=none \
  >/dev/null 2>k.err &
pid=$!; pids+=("$pid")
for _ in $(seq 1 600); do
  n=$(sqlite3 "$WORK/k.db" "SELECT count(*) FROM candidates" 2>/dev/null || echo 0)
  [ "${n:-0}" -ge 15000 ] && break
  sleep 0.1
done
kill -9 "$pid"; wait "$pid" 2>/dev/null
before=$(q k.db "SELECT count(*) FROM candidates")
[ "$before" -ge 15000 ] && [ "$before" -lt 400000 ] || fail "kill -9 came at $before candidates"
"$SEARCH" --db=k.db --resume --max_candidates=40000 --report=/dev/null --threads=1 --progress=none >/dev/null 2>r.err ||
  fail "resume: $(tail -3 r.err)"
[ "$(q k.db "SELECT count(*) FROM candidates WHERE outcome IN ('MISS', 'HIT')")" = 40000 ] || fail "resume did not finish at 40000"
[ "$(q k.db "SELECT count(*) FROM candidates WHERE outcome = 'PENDING'")" = 0 ] || fail "rows left pending"
dups=$(q k.db "SELECT count(*) FROM (SELECT cache_key FROM candidates WHERE outcome = 'MISS' GROUP BY cache_key HAVING count(*) > 1)")
[ "$dups" = 0 ] || fail "resume evaluated $dups keys twice"

# --- a gRPC domain worker ----------------------------------------------------------------------
"$WORKER" --mode=domain --experiment="$EXP" --listen=127.0.0.1:0 --port_file="$WORK/w.port" --capacity=2 --name=prog-worker \
  2>w.log &
pids+=("$!")
for _ in $(seq 1 100); do [ -s "$WORK/w.port" ] && break; sleep 0.1; done
port=$(cat "$WORK/w.port")
"$SEARCH" --experiment="$EXP" --db=w.db --report=/dev/null --max_candidates=3000 --workers="127.0.0.1:$port" --progress=none \
  >/dev/null 2>ws.err || fail "search on the worker: $(tail -3 ws.err)"
[ "$(q w.db "SELECT count(*) FROM candidates WHERE outcome = 'MISS' AND worker != 'prog-worker'")" = 0 ] || fail "evaluations not on the worker"
[ "$(q w.db "SELECT count(*) FROM candidates WHERE outcome = 'MISS'")" -gt 100 ] || fail "too few evaluations on the worker"
# The worker computes what the search host computes: the same program, the same fitness.
same=$(sqlite3 "$WORK/w.db" "ATTACH '$WORK/f.db' AS f; SELECT count(*) FROM candidates w JOIN f.candidates l ON w.exact_hash = l.exact_hash
       WHERE w.outcome = 'MISS' AND l.outcome = 'MISS' AND json_extract(w.objectives, '\$.fitness') != json_extract(l.objectives, '\$.fitness')")
[ "$same" = 0 ] || fail "$same programs scored differently on the worker"

# --- NSGA-II over fitness and live instructions -----------------------------------------------
# The demo's experiment with a second objective: the front printed must be exactly the
# non-dominated (fitness up, instructions down) points among everything recorded, as a brute
# force over the database finds them (hits included: a hit's live instruction count is its own).
sed -e 's/algorithm: REGULARIZED_EVOLUTION/algorithm: NSGA2 objectives { name: "fitness" } objectives { name: "instructions" }/' \
    -e 's/population_size: 1000/population_size: 100/' "$EXP" >nsga.textproto
grep -q "NSGA2" nsga.textproto || fail "could not derive the NSGA-II experiment"
"$SEARCH" --experiment=nsga.textproto --db=g.db --report=g.html --max_candidates=5000 --threads=1 --progress=none \
  >g.out 2>g.err || fail "NSGA-II search: $(tail -5 g.err)"
grep -q "fitness  instructions  candidate" g.out || fail "the front lacks the two objectives' columns: $(grep -A2 'Pareto front' g.out)"
printed=$(sed -n '/^Pareto front/,/^(\*/p' g.out | awk '$1 ~ /^[0-9]+$/ {print $1}' | sort -n | tr '\n' ' ')
[ -n "$printed" ] || fail "no front printed: $(cat g.out)"
python3 - "$WORK/g.db" "$printed" <<'PY' || fail "the printed NSGA-II front is not the database's front"
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
pts = {}
for cid, obj in db.execute("SELECT id, objectives FROM candidates WHERE outcome IN ('MISS', 'HIT') AND objectives IS NOT NULL"):
    o = json.loads(obj)
    pts[cid] = (o["fitness"], o["instructions"])
def dominated(p):
    return any(q[0] >= p[0] and q[1] <= p[1] and q != p for q in pts.values())
want = {p for p in pts.values() if not dominated(p)}
got_ids = [int(x) for x in sys.argv[2].split()]
got = {pts[i] for i in got_ids}
if got != want or len(got) != len(got_ids):
    print("front: want", sorted(want), "got", sorted(got), "from ids", got_ids)
    sys.exit(1)
if len(want) < 2 or not all(p[0] > 0 for p in want):
    print("a degenerate front:", sorted(want)); sys.exit(1)
PY
[ "$(q g.db "SELECT count(*) FROM candidates WHERE outcome = 'HIT'")" -gt 2500 ] || fail "NSGA-II: hit rate not above one half"

# --- bad specs ---------------------------------------------------------------------------------
bad() {  # pattern, program_domain body
  printf 'name: "bad" search_space { representation: PROGRAM program_domain { %s } }\n' "$2" >bad.textproto
  "$SEARCH" --experiment=bad.textproto --db=bad.db --report=/dev/null --max_candidates=10 --progress=none >bad.out 2>bad.err
  local rc=$?
  [ "$rc" = 2 ] && grep -q "$1" bad.err || fail "bad spec '$2': exit $rc, $(tail -2 bad.err)"
}
bad "program_domain.feature_size: 0 is outside 1..32" "feature_size: 0"
bad "program_domain.predict_ops\[0\]: MATRIX_SUM needs a matrix register" "matrix_registers: 0 predict_ops: [MATRIX_SUM]"
bad "program_domain.learn_size_min: 9 exceeds learn_size 8" "learn_size_min: 9"
bad "program_domain.search_tasks.num_train_examples: 0" "search_tasks { num_train_examples: 0 }"
bad "program_domain.mutations: at least one weight" "mutations { alter_param: 0 randomize_instruction: 0 randomize_component: 0 }"
bad "predict_op\|PROGRAM_OP\|predict_ops" "predict_ops: [NOT_AN_OP]"
[ ! -s bad.db ] || [ "$(sqlite3 bad.db "SELECT count(*) FROM candidates" 2>/dev/null || echo 0)" = 0 ] || fail "a bad spec recorded candidates"
finish
