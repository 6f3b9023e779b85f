import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { formatDiagnostics } from "../../dsl/diagnostics.ts";
import { analyzeFile } from "../../compiler/pipeline/frontend.ts";

// Each malformed/<case>.pipe has a sidecar <case>.expected: every diagnostic of the file, one per
// line, as `line:col: severity: message`, in source order. One run must report all of them.
const DIR = join(import.meta.dirname, "malformed");
const CASES = readdirSync(DIR)
  .filter((f) => f.endsWith(".pipe"))
  .sort();

describe("malformed .pipe corpus", () => {
  it("has at least 30 cases", () => {
    expect(CASES.length).toBeGreaterThanOrEqual(30);
  });

  it.each(CASES)("%s reports exactly the expected diagnostics", (name) => {
    const expected = readFileSync(join(DIR, name.replace(/\.pipe$/, ".expected")), "utf8").trimEnd().split("\n");
    // What `pipec check` runs: the models' passes too, so a request a model cannot take is in the corpus.
    const result = analyzeFile(join(DIR, name), { place: true });
    const actual = result.diagnostics.sorted().map((d) => `${d.span?.line}:${d.span?.column}: ${d.severity}: ${d.message}`);
    expect(actual).toEqual(expected);
    expect(result.ir).toBeUndefined();
  });

  it("prints file:line:col, the source line and a caret under the mistake", () => {
    const file = join(DIR, "typo-method.pipe");
    const result = analyzeFile(file);
    expect(formatDiagnostics(result.diagnostics.sorted(), "typo-method.pipe", result.source)).toBe(
      [
        "typo-method.pipe:5:16: error: unknown attention method 'tidl' (did you mean 'tidal'?)",
        "      attention: tidl(top_k: 256)",
        "                 ^~~~",
      ].join("\n"),
    );
  });
});
