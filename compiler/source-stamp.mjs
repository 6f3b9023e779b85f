// When the TypeScript sources last changed: bin/pipec.mjs uses it to tell whether dist/ is stale,
// and the compile cache uses it so a changed compiler never reuses an old compile.
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

export const SOURCE_DIRS = ["compiler", "dsl", "graph", "passes", "runtime"];

/** The newest modification time (ms) of any .ts file under the package's source folders. */
export function newestSourceMtime(root) {
  const walk = (dir) => {
    let newest = 0;
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) newest = Math.max(newest, walk(path));
      else if (entry.name.endsWith(".ts")) newest = Math.max(newest, statSync(path).mtimeMs);
    }
    return newest;
  };
  return Math.max(...SOURCE_DIRS.map((d) => walk(join(root, d))));
}
