#!/usr/bin/env bash
# Opens a search's HTML report in headless Chromium and checks the rendered DOM: the plotted
# Pareto points match the database's front, the plots and tables are there, nothing external
# is loaded.
set -uo pipefail
source "$PWD/tests/test_lib.sh"
FRONT="$ROOT/tests/db_pareto_front.py"
enter_scratch report
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROMIUM" ] || { echo "FAIL: chromium is not installed (tools/setup.sh installs it)"; exit 1; }

"$SEARCH" --experiment="$SPEC" --db=r.db --report=report.html --max_evaluations=20 --progress=none >run.out 2>run.err \
  || { echo "FAIL: search: $(tail -5 run.err)"; exit 1; }
grep -qE 'src=|href="http' report.html && { echo "FAIL: the report references external resources"; exit 1; }

profile=$(mktemp -d)
timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --dump-dom "file://$WORK/report.html" > dom.html 2>chromium.err
[ -s dom.html ] || { echo "FAIL: chromium rendered nothing: $(tail -5 chromium.err)"; exit 1; }

plotted=$(grep -o 'class="pareto-point"' dom.html | wc -l)
expected=$(/usr/bin/python3 "$FRONT" r.db 1)
rows_in_table=$(grep -o 'class="front-row"' dom.html | wc -l)
echo "Pareto points plotted: $plotted; front in the database: $expected; table rows: $rows_in_table"
fails=0
[ "$plotted" -eq "$expected" ] || { echo "FAIL: plotted $plotted Pareto points, the database has $expected"; fails=1; }
[ "$rows_in_table" -eq "$expected" ] || { echo "FAIL: the front table has $rows_in_table rows"; fails=1; }
[ "$expected" -ge 1 ] || { echo "FAIL: empty front"; fails=1; }
for id in pareto-plot best-vs-evaluations best-vs-time hit-rate chosen-layers; do
  grep -q "id=\"$id\"" dom.html || { echo "FAIL: the rendered report lacks #$id"; fails=1; }
done
candidates=$(grep -o 'class="candidate-point"' dom.html | wc -l)
[ "$candidates" -ge 1 ] || { echo "FAIL: no candidate points plotted"; fails=1; }

# With constraints, infeasible candidates stay off the front: feasibility decided here from
# the objectives, not from what the search recorded.
sed 's/^search {$/search {\n  constraints { metric: EFFECTIVE_BITS max_value: 9 }\n  constraints { metric: PERPLEXITY_INCREASE_PERCENT max_value: 5 }/' "$SPEC" > constrained.textproto
"$SEARCH" --experiment=constrained.textproto --db=c.db --report=constrained.html --max_evaluations=20 --progress=none >c.out 2>c.err \
  || { echo "FAIL: constrained search: $(tail -5 c.err)"; exit 1; }
timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --dump-dom "file://$WORK/constrained.html" > cdom.html 2>>chromium.err
plotted=$(grep -o 'class="pareto-point"' cdom.html | wc -l)
expected=$(/usr/bin/python3 "$FRONT" c.db 1 9 5)
unconstrained=$(/usr/bin/python3 "$FRONT" c.db 1 1e9 1e9)
infeasible=$(sqlite3 c.db "SELECT count(*) FROM candidates WHERE effective_bits > 9 OR perplexity_increase_percent > 5")
echo "constrained: plotted $plotted, feasible front $expected, front without constraints $unconstrained, infeasible candidates $infeasible"
[ "$plotted" -eq "$expected" ] || { echo "FAIL: constrained report plots $plotted Pareto points, want $expected"; fails=1; }
[ "$infeasible" -ge 1 ] || { echo "FAIL: the constrained search produced no infeasible candidate to leave out"; fails=1; }
exit $fails
