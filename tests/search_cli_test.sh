#!/usr/bin/env bash
# The search CLI end to end: bad input, reproducibility, kill -9 and --resume, cache reuse.
set -uo pipefail
source "$PWD/tests/test_lib.sh"
enter_scratch cli
expect_exit() {  # code, grep pattern, command...
  local code=$1 pattern=$2; shift 2
  "$@" >out.txt 2>err.txt; local rc=$?
  [ "$rc" -eq "$code" ] || fail "exit $rc (want $code): $*; stderr: $(cat err.txt)"
  grep -qF -- "$pattern" err.txt || fail "stderr lacks '$pattern': $(cat err.txt)"
}
rows() { sqlite3 "$1" "$2"; }

# --- bad input -----------------------------------------------------------------------
printf 'name: "x"\nsearch {\n  tournament_size: 99\n}\nsearch_space { keys { formats { format: INT bits: 4 } } }\n' > bad.textproto
expect_exit 2 "bad.textproto:3: search.tournament_size: 99 is outside" "$SEARCH" --experiment=bad.textproto --db=x.db --progress=none
printf 'search {\n  population_size: lots\n}\n' > syntax.textproto
expect_exit 2 "syntax.textproto:2:" "$SEARCH" --experiment=syntax.textproto --db=x.db --progress=none
sed 's|model_path: "data/tinylm-bytes-5m"|model_path: "no/such/model"|' "$SPEC" > badmodel.textproto
expect_exit 2 "evaluation.model_path: 'no/such/model' does not exist" "$SEARCH" --experiment=badmodel.textproto --db=y.db --progress=none
line=$(grep -n model_path badmodel.textproto | cut -d: -f1)
grep -qF "badmodel.textproto:$line:" err.txt || fail "model path error lacks the line $line: $(cat err.txt)"
expect_exit 2 "/nonexistent/dir/z.db" "$SEARCH" --experiment="$SPEC" --db=/nonexistent/dir/z.db --progress=none
# A fidelity ladder that is not nested names its field and line.
sed -e 's|^search {|search {\n  fidelity {\n    rungs { windows: [0] }\n    rungs { windows: [1, 2] }\n  }|' \
  -e 's|eval_windows: \[0\]|eval_windows: [0, 1, 2]|' "$SPEC" > badladder.textproto
expect_exit 2 "badladder.textproto:8: search.fidelity.rungs[1].windows: does not contain window 0 of rung 0" \
  "$SEARCH" --experiment=badladder.textproto --db=l.db --progress=none
sed -e 's|^search {|search {\n  fidelity { rungs { windows: [0] } }|' -e 's|eval_windows: \[0\]|eval_windows: [0, 1, 2]|' \
  "$SPEC" > ladder.textproto
# With remote workers the ladder stays (they score its window subsets, worker protocol 2);
# nothing listens on port 1, so the search is stopped after its first lines.
timeout 5 "$SEARCH" --experiment=ladder.textproto --db=lw.db --workers=localhost:1 --progress=none >lw.out 2>lw.err
grep -q "fidelities: 1 window" lw.err || fail "the ladder is not used with workers: $(cat lw.err)"
grep -q "left out" lw.err && fail "the ladder was left out with workers: $(cat lw.err)"
expect_exit 2 "--verify_hits: not with search.fidelity" \
  "$SEARCH" --experiment=ladder.textproto --db=l.db --verify_hits --progress=none
head -c 4096 /dev/urandom > garbage.db
expect_exit 2 "corrupt or not a SQLite database" "$SEARCH" --experiment="$SPEC" --db=garbage.db --progress=none
expect_exit 2 "--dedup: 'sometimes'" "$SEARCH" --experiment="$SPEC" --db=w.db --dedup=sometimes --progress=none
expect_exit 2 "--progress: 'fancy'" "$SEARCH" --experiment="$SPEC" --db=w.db --progress=fancy
expect_exit 2 "--threads: -3 is negative" "$SEARCH" --experiment="$SPEC" --db=w.db --threads=-3 --progress=none
# An unwritable report is refused before the search runs, not after.
expect_exit 2 "--report: cannot write /nonexistent/r.html" "$SEARCH" --experiment="$SPEC" --db=w.db --report=/nonexistent/r.html --progress=none
expect_exit 2 "--trace_csv: cannot write /nonexistent/t.csv" "$SEARCH" --experiment="$SPEC" --db=w.db --trace_csv=/nonexistent/t.csv --progress=none
mkdir -p adir
expect_exit 2 "adir: it is a directory" "$SEARCH" --experiment="$SPEC" --db=w.db --report=adir --progress=none
expect_exit 2 "holds no experiment to resume" "$SEARCH" --experiment="$SPEC" --db=empty.db --resume --progress=none
# A refused run creates no database (a new one is made only once the spec, model and domain pass).
for f in x.db y.db l.db w.db; do [ -e "$f" ] && fail "a refused run left $f behind"; done

# --- reproducibility with one thread ---------------------------------------------------
"$SEARCH" --experiment="$SPEC" --db=a.db --threads=1 --seed=5 --report=a.html --progress=none >/dev/null 2>a.err || fail "run a: $(tail -3 a.err)"
"$SEARCH" --experiment="$SPEC" --db=b.db --threads=1 --seed=5 --report=b.html --progress=none >/dev/null 2>b.err || fail "run b: $(tail -3 b.err)"
q="SELECT id, hex(candidate), outcome, mean_nll, effective_bits, parents FROM candidates ORDER BY id"
[ "$(rows a.db "$q")" = "$(rows b.db "$q")" ] || fail "same seed and --threads=1 gave different searches"
[ "$(rows a.db 'SELECT count(*) FROM candidates')" -ge 12 ] || fail "too few candidates recorded"
[ -s a.html ] || fail "no report written"

# --- a second run in the same database reuses the cache --------------------------------
"$SEARCH" --experiment="$SPEC" --db=a.db --threads=2 --seed=5 --report=a2.html --progress=none >a2.out 2>a2.err || fail "rerun: $(tail -3 a2.err)"
[ "$(rows a.db 'SELECT count(*) FROM experiments')" = 2 ] || fail "a rerun without --resume must start a new experiment"
hits=$(rows a.db "SELECT count(*) FROM candidates WHERE experiment_id = 2 AND outcome IN ('HIT', 'MERGED')")
[ "$hits" -gt 0 ] || fail "the rerun with the same seed had no cache hits"
grep -q "Pareto front" a2.out || fail "no front printed"

# --- dedup modes ------------------------------------------------------------------------
"$SEARCH" --experiment="$SPEC" --db=n.db --dedup=none --max_evaluations=8 --progress=none >/dev/null 2>n.err || fail "dedup none: $(tail -3 n.err)"
[ "$(rows n.db "SELECT count(*) FROM candidates WHERE outcome != 'MISS'")" = 0 ] || fail "--dedup=none must evaluate every candidate"

# --- kill -9 and --resume ----------------------------------------------------------------
"$SEARCH" --experiment="$SPEC" --db=k.db --threads=2 --max_evaluations=40 --progress=none >k1.out 2>k1.err &
pid=$!
for _ in $(seq 1 600); do
  n=$(rows k.db "SELECT count(*) FROM candidates WHERE outcome = 'MISS'" 2>/dev/null || echo 0)
  [ "${n:-0}" -ge 10 ] && break
  sleep 0.05
done
kill -9 $pid; wait $pid 2>/dev/null
before=$(rows k.db "SELECT count(*) FROM candidates WHERE outcome = 'MISS'")
[ "$before" -lt 40 ] || fail "the search finished before it could be killed"
"$SEARCH" --db=k.db --resume --progress=none >k2.out 2>k2.err || fail "resume: $(tail -3 k2.err)"
[ "$(rows k.db "SELECT count(*) FROM candidates WHERE outcome = 'PENDING'")" = 0 ] || fail "pending candidates left after resume"
[ "$(rows k.db "SELECT count(*) FROM candidates WHERE outcome IN ('MISS', 'PARTIAL_HIT')")" = 40 ] || \
  fail "evaluations after resume: $(rows k.db "SELECT count(*) FROM candidates WHERE outcome = 'MISS'") (want exactly the budget, 40)"
dup=$(rows k.db "SELECT count(*) FROM (SELECT cache_key FROM candidates WHERE outcome = 'MISS' GROUP BY cache_key HAVING count(*) > 1)")
[ "$dup" = 0 ] || fail "$dup configurations were evaluated twice"
[ "$(rows k.db 'SELECT count(*) FROM experiments')" = 1 ] || fail "--resume must continue, not start, an experiment"
expect_exit 2 "--seed cannot change a resumed experiment" "$SEARCH" --db=k.db --resume --seed=9 --progress=none
[ "$(rows k.db "SELECT status FROM experiments")" = finished ] || fail "experiment not marked finished"

# --- multi-fidelity: rung 0 scores one of three windows; kill -9 and --resume ------------
"$SEARCH" --experiment=ladder.textproto --db=f.db --threads=2 --max_evaluations=30 --progress=none >f1.out 2>f1.err &
pid=$!
for _ in $(seq 1 600); do
  n=$(rows f.db "SELECT count(*) FROM candidates WHERE outcome = 'MISS'" 2>/dev/null || echo 0)
  [ "${n:-0}" -ge 12 ] && break
  sleep 0.05
done
kill -9 $pid; wait $pid 2>/dev/null; status=$?
[ "$status" = 137 ] || fail "the fidelity search was not killed (exit $status): it finished first"
grep -q "fidelities: 1 window (0.33 of a full evaluation), 3 windows (full)" f1.err || fail "fidelities not logged: $(head -8 f1.err)"
"$SEARCH" --db=f.db --resume --report=f.html --trace_csv=f.csv --progress=none >f2.out 2>f2.err || fail "fidelity resume: $(tail -3 f2.err)"
grep -q 'id="rung-table"' f.html || fail "the report does not list candidates by rung"
grep -q "rung-row.*0 (1 window): objectives of its windows only" f.html || fail "the report does not label rung-0 candidates"
grep -q "rung-row.*1 (3 windows (full))" f.html || fail "the report does not show full evaluations' rung"
head -1 f.csv | grep -q compute || fail "no trace written: $(head -2 f.csv)"
grep -q "Stopped: compute budget reached (30 full-evaluation equivalents)" f2.out || fail "fidelity stop: $(grep Stopped f2.out)"
grep -qE "^Compute: 3[0-9]\.[0-9]+ full-evaluation equivalents; [0-9]+ promotions" f2.out || fail "no compute line: $(cat f2.out)"
[ "$(rows f.db "SELECT count(*) FROM candidates WHERE outcome = 'PENDING'")" = 0 ] || fail "pending candidates after the fidelity resume"
low=$(rows f.db "SELECT count(*) FROM candidates WHERE rung = 0 AND outcome = 'MISS'")
full=$(rows f.db "SELECT count(*) FROM candidates WHERE rung = 1 AND outcome = 'MISS'")
[ "$low" -gt 0 ] && [ "$full" -gt 0 ] || fail "rungs in the database: $low at rung 0, $full at the full evaluation"
[ "$(rows f.db "SELECT count(*) FROM candidates WHERE rung IS NULL AND outcome IN ('MISS', 'HIT')")" = 0 ] || fail "rows without a rung"
dup=$(rows f.db "SELECT count(*) FROM (SELECT cache_key FROM candidates WHERE outcome = 'MISS' GROUP BY cache_key HAVING count(*) > 1)")
[ "$dup" = 0 ] || fail "$dup configurations were evaluated twice at rung 0"
"$INSPECT" --db=f.db stats > fstats.txt || fail "inspect stats on a fidelity search"
grep -q "highest fidelity reached (search.fidelity; the last rung is the full evaluation): rung 0: [0-9]*, rung 1: [0-9]*" fstats.txt || \
  fail "inspect does not show the rungs: $(cat fstats.txt)"
grep -qE "compute 3[0-9]\.[0-9]+ full-evaluation equivalents" fstats.txt || fail "inspect does not show the compute: $(cat fstats.txt)"

finish
