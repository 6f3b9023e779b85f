import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "..");

/** Source files (not tests) under `dir`, with the repository-relative paths of what they import. */
function imports(dir: string): { file: string; target: string }[] {
  const out: { file: string; target: string }[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith(".ts") && !name.endsWith(".test.ts") && !name.includes(".test-support.")) {
        for (const m of readFileSync(path, "utf8").matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g)) {
          out.push({ file: relative(ROOT, path), target: relative(ROOT, resolve(d, m[1]!)) });
        }
      }
    }
  };
  walk(join(ROOT, dir));
  return out;
}

/** The layering rules of docs/ARCHITECTURE.md: each layer only looks down. */
const RULES: { layer: string; mayNotImport: string[]; why: string }[] = [
  { layer: "runtime", mayNotImport: ["compiler", "passes", "dsl"], why: "a generated driver imports the runtime alone" },
  { layer: "dsl", mayNotImport: ["compiler", "passes", "runtime"], why: "dsl/ knows text and ASTs, not ONNX" },
  { layer: "compiler/ir", mayNotImport: ["passes", "compiler/cli", "compiler/pass-manager", "compiler/pipeline", "runtime", "dsl"], why: "the IR knows nothing of passes, the CLI or the runtime" },
  { layer: "compiler/onnx", mayNotImport: ["passes", "compiler/cli", "compiler/pass-manager", "compiler/pipeline", "runtime", "dsl"], why: "model I/O sits under everything" },
  { layer: "passes", mayNotImport: ["compiler/cli", "compiler/pipeline", "runtime", "dsl"], why: "passes build on the IR and its rewrite API only" },
];

describe("layering", () => {
  it.each(RULES)("$layer imports nothing from $mayNotImport ($why)", ({ layer, mayNotImport }) => {
    const found = imports(layer);
    expect(found.length).toBeGreaterThan(0); // the scan sees this layer's imports at all
    const bad = found.filter(({ target }) => mayNotImport.some((p) => target === p || target.startsWith(`${p}/`)));
    expect(bad.map(({ file, target }) => `${file} -> ${target}`)).toEqual([]);
  });
});
