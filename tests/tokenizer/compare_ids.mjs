// Compares //core:tokenize's ids with the JavaScript reference for one tokenizer and prints,
// for each differing case, the first differing position with the tokens around it.
//
//   node compare_ids.mjs --reference=ref.json --with=FILE --without=FILE --label=NAME
//
// --with / --without: tokenize --batch --format=json output (one JSON array per case, in
// order), with and without special tokens. Exits 1 if anything differs.
import fs from "node:fs";
import path from "node:path";

const args = Object.fromEntries(
  process.argv.slice(2).map((a) => {
    const m = /^--([a-z_]+)=(.*)$/s.exec(a);
    if (!m) throw new Error(`bad argument ${a}`);
    return [m[1], m[2]];
  }),
);
const reference = JSON.parse(fs.readFileSync(args.reference, "utf8"));
const readLines = (file) =>
  fs.readFileSync(file, "utf8").split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l));
const actual = { with_special: readLines(args.with), without_special: readLines(args.without) };

let names = null; // id -> token string, loaded only when something differs
const tokenName = (id) => {
  if (names === null) {
    const json = JSON.parse(fs.readFileSync(path.join(reference.tokenizer, "tokenizer.json"), "utf8"));
    names = new Map(Object.entries(json.model.vocab).map(([t, i]) => [i, t]));
    for (const t of json.added_tokens ?? []) names.set(t.id, t.content);
  }
  return names.get(id) ?? "?";
};
const show = (ids, from, to) =>
  ids.slice(from, to).map((id, k) => `${from + k}:${id}=${JSON.stringify(tokenName(id))}`).join(" ") || "(none)";

let failures = 0;
let compared = 0;
for (const mode of ["with_special", "without_special"]) {
  if (actual[mode].length !== reference.cases.length) {
    console.log(`FAIL ${args.label}: ${mode}: tokenize printed ${actual[mode].length} lines for ${reference.cases.length} cases`);
    failures++;
    continue;
  }
  reference.cases.forEach((c, i) => {
    const want = c[mode].ids;
    const got = actual[mode][i];
    compared++;
    let at = 0;
    while (at < want.length && at < got.length && want[at] === got[at]) at++;
    if (at === want.length && at === got.length) return;
    failures++;
    console.log(`FAIL ${args.label}: case "${c.name}" ${mode}: first difference at position ${at} ` +
                `(JS ${want.length} ids, C++ ${got.length} ids)`);
    console.log(`  JS : ${show(want, Math.max(0, at - 3), at + 5)}`);
    console.log(`  C++: ${show(got, Math.max(0, at - 3), at + 5)}`);
  });
}
console.log(`${args.label}: ${compared - failures} of ${compared} encodings identical`);
process.exit(failures === 0 ? 0 : 1);
