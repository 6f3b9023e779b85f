import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { analyzeSource } from "../pipeline/frontend.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const PIPE = join(ROOT, "examples/window-test.pipe");
const source = (extra: string) => `pipeline w {
  model llm = onnx("models/sotu-tiny/model.onnx")
  tokenizer tok = ids
  stage decode = generate(llm, tok) {
    kv: window(size: 8)
${extra}  }
}
`;

describe("kv: window", () => {
  it("lowers to the sliding-window pass between lift and lower, lossy, with the runtime's eviction policy", () => {
    const result = analyzeSource(source(""), PIPE);
    expect(result.diagnostics.items.filter((d) => d.severity === "error")).toEqual([]);
    const stage = result.ir!.stages[0]!;
    expect(stage.kind === "generate" && stage.kv.level).toBe("graph");
    expect(result.ir!.models[0]!.passes.map((p) => p.pass)).toEqual(["lift-attention", "sliding-window", "lower-attention"]);
    expect(stage.kind === "generate" && stage.kv.use.lossy).toBe(true);
  });

  it("is refused with speculation, at the speculate: value", () => {
    const text = source("    speculate: lookup(ngram: 2)\n");
    const errors = analyzeSource(text, PIPE).diagnostics.items.filter((d) => d.severity === "error");
    expect(errors).toHaveLength(1);
    expect(errors[0]!.message).toContain("speculate: lookup cannot be combined with kv: window: its window is a band over cache rows");
    const lines = text.split("\n");
    const line = lines.findIndex((l) => l.includes("speculate:"));
    expect(errors[0]!.span).toMatchObject({ line: line + 1, column: lines[line]!.indexOf("lookup") + 1 });
  });
});
