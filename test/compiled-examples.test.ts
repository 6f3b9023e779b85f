import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { compileFile } from "../compiler/pipeline/compile.ts";
import { tempDir } from "./helpers/tmp.ts";

// Every example compiles to the same bytes as when these digests were recorded: a refactor that
// changes a model, a driver, a dump or a manifest fails here. After a deliberate change to what
// the compiler writes: PIPEC_UPDATE_DIGESTS=1 npx vitest run test/compiled-examples.test.ts
const ROOT = resolve(import.meta.dirname, "..");
const EXAMPLES = join(ROOT, "examples");
const DIGESTS = join(ROOT, "test/fixtures/compiled-examples.json");

function digests(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const path = join(d, name);
      if (statSync(path).isDirectory()) walk(path);
      else out[relative(dir, path)] = createHash("sha256").update(readFileSync(path)).digest("hex");
    }
  };
  walk(dir);
  return out;
}

describe("compiled examples", () => {
  const work = tempDir("pipec-compiled-examples-");
  const examples = readdirSync(EXAMPLES).filter((f) => f.endsWith(".pipe")).sort();
  const recorded = JSON.parse(readFileSync(DIGESTS, "utf8")) as Record<string, Record<string, string>>;
  const found: Record<string, Record<string, string>> = {};

  it("every example has recorded digests", () => {
    expect(Object.keys(recorded).sort()).toEqual(examples);
  });

  it.each(examples)("%s compiles to the recorded bytes", async (name) => {
    const outDir = join(work, name.replace(/\.pipe$/, ""));
    const result = await compileFile(join(EXAMPLES, name), { outDir, runtimeImport: "pipec/runtime" });
    expect(result.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
    found[name] = digests(outDir);
    if (process.env["PIPEC_UPDATE_DIGESTS"]) {
      writeFileSync(DIGESTS, JSON.stringify({ ...(JSON.parse(readFileSync(DIGESTS, "utf8")) as object), [name]: found[name] }, null, 2) + "\n");
    } else expect(found[name]).toEqual(recorded[name]);
  });
});
