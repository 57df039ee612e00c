// Encodes every test case with Hugging Face's JavaScript tokenizer (@huggingface/tokenizers):
// the reference ids //tests:tokenizer_reference_test holds //core:tokenize to.
//
//   node reference_encode.mjs --library=.../@huggingface/tokenizers/dist/tokenizers.mjs \
//     --tokenizer=DIR --cases=cases.json --root=DIR --out=FILE [--strings_out=FILE]
//
// DIR holds tokenizer.json and optionally tokenizer_config.json. Cases are {"name", "text"} or
// {"name", "file"} (a path relative to --root, read as one UTF-8 string). --out gets
// {"tokenizer", "cases": [{"name", "with_special": {ids, tokens}, "without_special": {...}}]};
// --strings_out gets the case texts as a JSON array, in order, for `tokenize --batch`.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const args = Object.fromEntries(
  process.argv.slice(2).map((a) => {
    const m = /^--([a-z_]+)=(.*)$/s.exec(a);
    if (!m) throw new Error(`bad argument ${a}`);
    return [m[1], m[2]];
  }),
);
for (const required of ["library", "tokenizer", "cases", "root", "out"]) {
  if (!args[required]) throw new Error(`--${required} is required`);
}

const { Tokenizer } = await import(pathToFileURL(path.resolve(args.library)).href);
const readJson = (file) => JSON.parse(fs.readFileSync(file, "utf8"));
const configFile = path.join(args.tokenizer, "tokenizer_config.json");
const tokenizer = new Tokenizer(
  readJson(path.join(args.tokenizer, "tokenizer.json")),
  fs.existsSync(configFile) ? readJson(configFile) : {},
);

const cases = readJson(args.cases).map((c) => ({
  name: c.name,
  text: c.file !== undefined ? fs.readFileSync(path.join(args.root, c.file), "utf8") : c.text,
}));
const encode = (text, add_special_tokens) => {
  const { ids, tokens } = tokenizer.encode(text, { add_special_tokens });
  return { ids, tokens };
};
const result = {
  tokenizer: args.tokenizer,
  cases: cases.map((c) => ({
    name: c.name,
    with_special: encode(c.text, true),
    without_special: encode(c.text, false),
  })),
};
fs.writeFileSync(args.out, JSON.stringify(result));
if (args.strings_out) fs.writeFileSync(args.strings_out, JSON.stringify(cases.map((c) => c.text)));
