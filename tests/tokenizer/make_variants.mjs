// Writes the synthetic tokenizers of variants.json: a real tokenizer.json with some fields
// replaced, so the reference test also covers components the three real files do not use.
//
//   node make_variants.mjs --variants=variants.json --out=DIR --base_llama3=DIR --base_qwen3=DIR ...
//
// Each variant {"name", "base", "set"?, "model_set"?, "add_tokens"?} becomes DIR/<name>/ with
// tokenizer.json (base with `set` keys replaced, `model_set` keys replaced inside model, and
// `add_tokens` appended to added_tokens) and the base's tokenizer_config.json.
import fs from "node:fs";
import path from "node:path";

const args = Object.fromEntries(
  process.argv.slice(2).map((a) => {
    const m = /^--([a-z0-9_]+)=(.*)$/s.exec(a);
    if (!m) throw new Error(`bad argument ${a}`);
    return [m[1], m[2]];
  }),
);
const bases = new Map();
for (const variant of JSON.parse(fs.readFileSync(args.variants, "utf8"))) {
  const baseDir = args[`base_${variant.base}`];
  if (!baseDir) throw new Error(`variant ${variant.name}: no --base_${variant.base}`);
  if (!bases.has(baseDir)) bases.set(baseDir, fs.readFileSync(path.join(baseDir, "tokenizer.json"), "utf8"));
  const tokenizer = JSON.parse(bases.get(baseDir));
  Object.assign(tokenizer, variant.set ?? {});
  Object.assign(tokenizer.model, variant.model_set ?? {});
  tokenizer.added_tokens = [...tokenizer.added_tokens, ...(variant.add_tokens ?? [])];
  const dir = path.join(args.out, variant.name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, "tokenizer.json"), JSON.stringify(tokenizer));
  const config = path.join(baseDir, "tokenizer_config.json");
  if (fs.existsSync(config)) fs.copyFileSync(config, path.join(dir, "tokenizer_config.json"));
}
