// Exits 0 when tools/npm/node_modules holds exactly the versions package-lock.json pins, so
// tools/setup.sh can skip `npm ci`; otherwise prints the first mismatch and exits 1.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const lock = JSON.parse(fs.readFileSync(path.join(here, "package-lock.json"), "utf8"));
for (const [where, entry] of Object.entries(lock.packages ?? {})) {
  if (where === "") continue;
  const manifest = path.join(here, where, "package.json");
  let installed;
  try {
    installed = JSON.parse(fs.readFileSync(manifest, "utf8")).version;
  } catch {
    console.log(`${where}: not installed`);
    process.exit(1);
  }
  if (installed !== entry.version) {
    console.log(`${where}: ${installed} installed, ${entry.version} pinned`);
    process.exit(1);
  }
}
