#!/usr/bin/env bash
# A short search end to end on every model-family fixture (llama with each RoPE variant,
# mistral, qwen2 tied and untied, qwen3; sharded and BF16 among them), pointed at with --model
# and --text as a user would; the two fixtures with a tokenizer.json read the text through it.
# Then a worker serving a family, and the bad-input paths of bring-your-own-model.
set -uo pipefail
source "$PWD/tests/test_lib.sh"
FAMILY_SPEC="$ROOT/tests/data/family_experiment.textproto"
TEXT="$ROOT/data/tinylm-bytes-5m/eval.txt"
enter_scratch families

for fixture in llama3-rope-bf16 llama-yarn-sharded llama-linear-bias llama-dynamic mistral-gqa \
               qwen2-bias-tied qwen2-bias-untied-bf16 qwen3-qknorm-sharded-bf16; do
  model="$ROOT/tests/data/$fixture"
  if ! "$SEARCH" --experiment="$FAMILY_SPEC" --model="$model" --text="$TEXT" --db="$fixture.db" \
      --report="$fixture.html" --threads=2 --progress=none >"$fixture.out" 2>"$fixture.err"; then
    fail "$fixture: search failed: $(tail -3 "$fixture.err")"
    continue
  fi
  grep -q "Pareto front" "$fixture.out" || fail "$fixture: no front printed"
  evaluated=$(sqlite3 "$fixture.db" "SELECT count(*) FROM candidates WHERE outcome = 'MISS' AND mean_nll > 0")
  [ "$evaluated" -ge 6 ] || fail "$fixture: $evaluated evaluated candidates with an NLL (want 6)"
  if [ -f "$model/tokenizer.json" ]; then
    grep -q "tokenizer.json of" "$fixture.err" || fail "$fixture: the text was not read through its tokenizer: $(grep 'text:' "$fixture.err")"
  else
    grep -q "bytes of" "$fixture.err" || fail "$fixture: the text was not read as bytes: $(grep 'text:' "$fixture.err")"
  fi
done
grep -q "model: qwen3, 3 layers" qwen3-qknorm-sharded-bf16.err || fail "qwen3 model line: $(grep 'model:' qwen3-qknorm-sharded-bf16.err)"

# The embedded default experiment fits itself to a 2-KV-head, 16-dimensional-head model (CHAI's
# 3 clusters and 32-element groups are dropped, with a note) and runs.
"$SEARCH" --model="$ROOT/tests/data/qwen2-bias-untied-bf16" --text="$TEXT" --db=default.db --report=default.html \
  --max_evaluations=3 --threads=2 --progress=none >default.out 2>default.err || fail "default experiment: $(tail -3 default.err)"
grep -q "fitted to the model: search_space.head_clusters: 3 dropped (the model has 2 KV heads)" default.err \
  || fail "no note on the dropped cluster count: $(grep fitted default.err)"
grep -q "token_group_sizes: 32 dropped" default.err || fail "no note on the dropped group size: $(grep fitted default.err)"

# --eval_threads changes nothing but the speed: the same search with 4 threads per evaluation.
"$SEARCH" --experiment="$FAMILY_SPEC" --model="$ROOT/tests/data/qwen2-bias-tied" --text="$TEXT" --db=t1.db \
  --report=t1.html --threads=1 --eval_threads=1 --progress=none >/dev/null 2>t1.err || fail "eval_threads 1: $(tail -2 t1.err)"
"$SEARCH" --experiment="$FAMILY_SPEC" --model="$ROOT/tests/data/qwen2-bias-tied" --text="$TEXT" --db=t2.db \
  --report=t2.html --threads=1 --eval_threads=4 --progress=none >/dev/null 2>t2.err || fail "eval_threads 4: $(tail -2 t2.err)"
q="SELECT id, hex(candidate), outcome, mean_nll, effective_bits, functional_hash FROM candidates ORDER BY id"
[ "$(sqlite3 t1.db "$q")" = "$(sqlite3 t2.db "$q")" ] || fail "--eval_threads=4 (2 windows of 2 threads each) changed the search's candidates, results or hashes"

# A worker serving a family: the search sends it the evaluations.
"$WORKER" --listen=127.0.0.1:0 --port_file=port.txt --model="$ROOT/tests/data/mistral-gqa" --text="$TEXT" \
  --experiment="$FAMILY_SPEC" --eval_threads=1 2>worker.err &
pids+=($!)
for _ in $(seq 1 200); do [ -s port.txt ] && break; sleep 0.05; done
[ -s port.txt ] || fail "worker did not start: $(tail -3 worker.err)"
"$SEARCH" --experiment="$FAMILY_SPEC" --model="$ROOT/tests/data/mistral-gqa" --text="$TEXT" --db=w.db --report=w.html \
  --workers="127.0.0.1:$(cat port.txt)" --progress=none >w.out 2>w.err || fail "search on a worker: $(tail -3 w.err)"
remote=$(sqlite3 w.db "SELECT count(*) FROM candidates WHERE outcome = 'MISS' AND worker LIKE '127.0.0.1:%'")
[ "${remote:-0}" -ge 6 ] || fail "the worker evaluated $remote candidates (want 6)"

# --- bad input: each a clear error naming the file and field, exit code 2 -----------------
expect_exit() {  # code, grep pattern, command...
  local code=$1 pattern=$2; shift 2
  "$@" >out.txt 2>err.txt; local rc=$?
  [ "$rc" -eq "$code" ] || fail "exit $rc (want $code): $*; stderr: $(cat err.txt)"
  grep -qF -- "$pattern" err.txt || fail "stderr lacks '$pattern': $(cat err.txt)"
}
# A text too short for the experiment's windows.
head -c 1000 "$TEXT" > short.txt
expect_exit 2 "short.txt yields 7 windows" "$SEARCH" --experiment="$FAMILY_SPEC" --model="$ROOT/tests/data/qwen2-bias-tied" \
  --text=short.txt --db=bad.db --progress=none --validate_only
sed 's/eval_windows: \[0, 1\]/eval_windows: [0, 40]/' "$FAMILY_SPEC" > far.textproto
expect_exit 2 "evaluation.eval_windows[1]: window 40" "$SEARCH" --experiment=far.textproto --model="$ROOT/tests/data/qwen2-bias-tied" \
  --text=short.txt --db=bad.db --progress=none --validate_only
# A truncated shard, and an index naming a shard that is not there.
cp -rL "$ROOT/tests/data/llama-yarn-sharded" sharded && chmod -R u+w sharded
shard=$(ls sharded/model-0000*-of-*.safetensors | head -1)
head -c 5000 "$shard" > cut && mv cut "$shard"
expect_exit 2 "$(basename "$shard"): tensor '" "$SEARCH" --experiment="$FAMILY_SPEC" --model=sharded --text="$TEXT" --db=bad.db \
  --progress=none --validate_only
grep -q "lies outside the data section" err.txt || fail "truncated shard: $(cat err.txt)"
cp -rL "$ROOT/tests/data/llama-yarn-sharded" missing && chmod -R u+w missing
rm missing/model-00003-of-00003.safetensors
expect_exit 2 "names shard 'model-00003-of-00003.safetensors', which cannot be opened" "$SEARCH" --experiment="$FAMILY_SPEC" \
  --model=missing --text="$TEXT" --db=bad.db --progress=none --validate_only
# An index that is not one, a tensor of the wrong shape, a tensor of an unsupported dtype.
cp -rL "$ROOT/tests/data/qwen3-qknorm-sharded-bf16" index && chmod -R u+w index
echo '{"metadata": {}}' > index/model.safetensors.index.json
expect_exit 2 "model.safetensors.index.json: field 'weight_map' is missing" "$SEARCH" --experiment="$FAMILY_SPEC" \
  --model=index --text="$TEXT" --db=bad.db --progress=none --validate_only
for edit in "shape|h['model.norm.weight']['shape'] = [32, 2]|tensor 'model.norm.weight' has shape [32, 2], expected [64]" \
            "dtype|h['model.norm.weight']['dtype'] = 'I32'|tensor 'model.norm.weight' has dtype I32; supported dtypes are F32, F16 and BF16"; do
  name=${edit%%|*}; rest=${edit#*|}; code=${rest%%|*}; want=${rest#*|}
  rm -rf "$name" && cp -rL "$ROOT/tests/data/qwen2-bias-tied" "$name" && chmod -R u+w "$name"
  python3 - "$name/model.safetensors" "$code" <<'PY'
import json, struct, sys
p = sys.argv[1]; b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n]); exec(sys.argv[2]); t = json.dumps(h).encode()
open(p, "wb").write(struct.pack("<Q", len(t)) + t + b[8 + n:])
PY
  expect_exit 2 "$want" "$SEARCH" --experiment="$FAMILY_SPEC" --model="$name" --text="$TEXT" --db=bad.db --progress=none --validate_only
done
# A tokenizer.json of a kind that is not supported.
cp -rL "$ROOT/tests/data/llama3-rope-bf16" wordpiece && chmod -R u+w wordpiece
python3 - wordpiece/tokenizer.json <<'PY'
import json, sys
p = sys.argv[1]; t = json.load(open(p)); t["model"]["type"] = "WordPiece"; json.dump(t, open(p, "w"))
PY
expect_exit 2 "model.type 'WordPiece' is not supported" "$SEARCH" --experiment="$FAMILY_SPEC" --model=wordpiece --text="$TEXT" \
  --db=bad.db --progress=none --validate_only
# A config asking for what is not implemented: MoE, an unknown RoPE type, a short sliding window.
for edit in 'c["num_experts"] = 8|num_experts' 'c["rope_parameters"] = {"rope_type": "longrope", "rope_theta": 1e4}|longrope' \
            'c["sliding_window"] = 64|sliding_window of 64'; do
  rm -rf cfg && cp -rL "$ROOT/tests/data/mistral-gqa" cfg && chmod -R u+w cfg
  python3 - cfg/config.json "${edit%%|*}" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p)); exec(sys.argv[2]); json.dump(c, open(p, "w"))
PY
  expect_exit 2 "${edit##*|}" "$SEARCH" --experiment="$FAMILY_SPEC" --model=cfg --text="$TEXT" --db=bad.db --progress=none --validate_only
done
finish
