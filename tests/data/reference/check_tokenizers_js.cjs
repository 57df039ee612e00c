// Cross-check of the two tiny tokenizers against transformers.js' tokenizer code, as packaged
// in @lenml/tokenizers (a tokenizer-only fork of transformers.js). Not needed by the build.
//   npm install --prefix /tmp/npmtok @lenml/tokenizers@3.7.2
//   node tests/data/reference/check_tokenizers_js.cjs /tmp/npmtok/node_modules/@lenml/tokenizers
// Encodes every tokenizer_examples.json text with add_special_tokens and compares the ids, then
// decodes them back (skip_special_tokens) and compares the text. Exit status 1 on a mismatch.
const fs = require("fs");
const path = require("path");
const lib = require(process.argv[2] || "@lenml/tokenizers");
const root = path.join(__dirname, "..");
let bad = 0, n = 0;
for (const dir of ["llama3-rope-bf16", "mistral-gqa"]) {
  const read = (f) => JSON.parse(fs.readFileSync(path.join(root, dir, f), "utf8"));
  const tok = lib.TokenizerLoader.fromPreTrained({
    tokenizerJSON: read("tokenizer.json"), tokenizerConfig: read("tokenizer_config.json"),
  });
  for (const ex of read("tokenizer_examples.json").examples) {
    const ids = Array.from(tok.encode(ex.text));
    const back = tok.decode(ids, { skip_special_tokens: true });
    n++;
    if (JSON.stringify(ids) !== JSON.stringify(ex.ids) || back !== ex.text) {
      bad++;
      console.log(`MISMATCH ${dir} ${JSON.stringify(ex.text)}\n  js  ${JSON.stringify(ids)}\n  ref ${JSON.stringify(ex.ids)}\n  decoded ${JSON.stringify(back)}`);
    }
  }
}
console.log(`${n - bad} passed, ${bad} failed`);
process.exit(bad ? 1 : 0);
