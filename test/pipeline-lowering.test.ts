import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { PassRegistry } from "../graph/pass-manager/registry.ts";
import { compileSource } from "../compiler/pipeline/compile.ts";
import { analyzeSource } from "../compiler/pipeline/frontend.ts";
import { runCompiled } from "../compiler/pipeline/run.ts";
import { tempDir } from "./helpers/tmp.ts";

const ROOT = resolve(import.meta.dirname, "..");
const PIPE = join(ROOT, "examples/sparse.pipe");
const LLAMA = JSON.parse(readFileSync(join(ROOT, "test/fixtures/reference/llama-dynamo/expected.json"), "utf8")) as { prompts: { input_ids: number[]; greedy: number[] }[] };

const source = (kv: string, attention: string) => `pipeline sparse {
  model llm = onnx("../test/fixtures/reference/llama-dynamo/model.onnx")
  tokenizer tok = ids
  stage decode = generate(llm, tok) {
    kv: ${kv}
    attention: ${attention}
    max_tokens: 24
  }
}
`;

async function tokens(outDir: string, prompt: number[]): Promise<number[]> {
  for await (const event of runCompiled(outDir, prompt, { device: "cpu" })) if (event.kind === "end") return event.tokens;
  throw new Error("no end event");
}

describe("lowering optimisation requests to graph passes", () => {
  const tmp = tempDir("pipec-lowering-");
  const { input_ids, greedy } = LLAMA.prompts[0]!;

  it("fails at the request when its pass is not registered", () => {
    const result = analyzeSource(source("full", "tidal(top_k: 64, full_layers: 1, select_layers: [1])"), PIPE, { registry: new PassRegistry() });
    expect(result.diagnostics.items.map((d) => `${d.span?.line}:${d.span?.column}: ${d.message}`)).toEqual(["6:16: attention: tidal is not implemented in this build"]);
    expect(result.ir).toBeUndefined();
  });

  it("runs an attention pass between lift-attention and lower-attention and marks it lossy", async () => {
    const out = join(tmp, "tidal");
    const result = await compileSource(source("full", "tidal(top_k: 64, full_layers: 0, select_layers: [0])"), PIPE, { outDir: out });
    expect(result.diagnostics).toEqual([]);
    const manifest = JSON.parse(readFileSync(join(out, "manifest.json"), "utf8"));
    expect(manifest.passes.map((p: { pass: string; changed: boolean; lossy: boolean }) => [p.pass, p.changed, p.lossy])).toEqual([
      ["lift-attention", true, false],
      ["tidal", true, true],
      // tidal's kv_append_only leaves nothing canonical here: the selection layer is split over
      // past and new rows, the sparse layer is two-block attention over the selected rows.
      ["lower-attention", false, false],
    ]);
    expect(manifest.passes[1]).toMatchObject({ options: { top_k: "64", full_layers: "0", select_layers: "[0]" }, stats: { selection: 1, sparse: 1 } });
    expect(manifest.lossy).toEqual(["decode.attention: tidal"]);
    expect(readFileSync(join(out, "pipeline.ir"), "utf8")).toContain("    attention: tidal(top_k: 64, full_layers: 0, select_layers: [0])  # graph, lossy\n");
    // A budget wider than the whole context (4 + 24 tokens) keeps every token: exactly greedy.
    expect(await tokens(out, input_ids)).toEqual(greedy);
    // Rewritten models are deterministic too.
    const again = join(tmp, "tidal-again");
    await compileSource(source("full", "tidal(top_k: 64, full_layers: 0, select_layers: [0])"), PIPE, { outDir: again });
    for (const file of ["models/llm/model.onnx", "manifest.json", "pipeline.ir", "driver.ts"]) expect(readFileSync(join(again, file)).equals(readFileSync(join(out, file))), file).toBe(true);
  });

  it("keeps greedy's tokens under a streaming window wider than the context", async () => {
    const out = join(tmp, "streaming");
    const result = await compileSource(source("streaming(sinks: 4, window: 60)", "dense"), PIPE, { outDir: out });
    expect(result.diagnostics).toEqual([]);
    expect(JSON.parse(readFileSync(join(out, "manifest.json"), "utf8")).passes.map((p: { pass: string }) => p.pass)).toEqual(["lift-attention", "streaming-llm", "lower-attention"]);
    expect(await tokens(out, input_ids)).toEqual(greedy);
  });

  it("changes the output once the budget is smaller than the context", async () => {
    const out = join(tmp, "narrow");
    await compileSource(source("full", "tidal(top_k: 4, full_layers: 0, select_layers: [0])"), PIPE, { outDir: out });
    const sparse = await tokens(out, input_ids);
    expect(sparse).toHaveLength(24);
    expect(sparse).not.toEqual(greedy);
  });

  it("refuses a request whose pass would change nothing, and skips it with a warning when it is optional", async () => {
    // streaming-llm replaces the attention tidal would rewrite: tidal finds nothing to do.
    const tidal = "tidal(top_k: 64, full_layers: 0, select_layers: [0])";
    const refused = await compileSource(source("streaming(sinks: 4, window: 60)", tidal), PIPE, { outDir: join(tmp, "both") });
    expect(refused.diagnostics.map((d) => `${d.span?.line}:${d.span?.column}: ${d.severity}: ${d.message}`)).toEqual([
      "6:16: error: attention: tidal cannot be applied: kv: streaming already rewrote the attention layers of model 'llm' it would rewrite, and the two do not combine",
    ]);
    expect(refused.outDir).toBeUndefined();
    const out = join(tmp, "both-optional");
    const skipped = await compileSource(source("streaming(sinks: 4, window: 60)", `${tidal}?`), PIPE, { outDir: out });
    expect(skipped.diagnostics.map((d) => `${d.span?.line}:${d.span?.column}: ${d.severity}`)).toEqual(["6:16: warning"]);
    const manifest = JSON.parse(readFileSync(join(out, "manifest.json"), "utf8"));
    expect(manifest.passes.map((p: { pass: string }) => p.pass)).toEqual(["lift-attention", "streaming-llm", "lower-attention"]);
    expect(manifest.lossy).toEqual(["decode.kv: streaming"]);
    expect(await tokens(out, input_ids)).toEqual(greedy);
    // An optional request gives way to a required one that takes the same layers, whichever runs first.
    const reversed = await compileSource(source("streaming(sinks: 4, window: 60)?", tidal), PIPE, { outDir: join(tmp, "both-reversed") });
    expect(reversed.diagnostics.map((d) => `${d.span?.line}:${d.span?.column}: ${d.severity}: ${d.message}`)).toEqual([
      "5:9: warning: kv: streaming is skipped, it cannot be applied: attention: tidal rewrites the same attention layers of model 'llm', and the two do not combine (it is optional)",
    ]);
    const placed = JSON.parse(readFileSync(join(tmp, "both-reversed", "manifest.json"), "utf8"));
    expect(placed.passes.map((p: { pass: string; changed: boolean }) => [p.pass, p.changed])).toEqual([["lift-attention", true], ["tidal", true], ["lower-attention", false]]);
    expect(readFileSync(join(tmp, "both-reversed", "driver.ts"), "utf8")).not.toContain("streaming");
  });
});
