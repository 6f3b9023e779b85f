import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { compileSource } from "../compiler/pipeline/compile.ts";
import { runCompiled } from "../compiler/pipeline/run.ts";
import type { GenerationStats } from "../runtime/index.ts";
import { tempDir } from "./helpers/tmp.ts";

const ROOT = resolve(import.meta.dirname, "..");
const PIPE = join(ROOT, "examples/budgets.pipe");
const PROMPT = Array.from({ length: 40 }, (_, i) => 1 + ((i * 37) % 300));
const MAX_TOKENS = 12;

const source = (settings: string) => `pipeline budgets {
  model llm = onnx("../test/fixtures/reference/llama-dynamo/model.onnx")
  tokenizer tok = ids
  stage decode = generate(llm, tok) {
    ${settings}
    max_tokens: ${MAX_TOKENS}
  }
}
`;

/** Compiles the request on the 2-layer llama reference export and runs it: the run's stats. */
async function statsOf(settings: string, out: string): Promise<GenerationStats> {
  const result = await compileSource(source(settings), PIPE, { outDir: out });
  expect(result.diagnostics).toEqual([]);
  for await (const event of runCompiled(out, PROMPT, { device: "cpu" })) if (event.kind === "end") return event.stats;
  throw new Error("no end event");
}

// A budget is the number of past keys a layer attends per step, whatever the method; the stats
// report what the graph attended (its attended_keys outputs), so these compare against the request.
describe("one budget meaning across methods, measured from what the layers attend", () => {
  const tmp = tempDir("pipec-budgets-");

  it("tokenselect(top_k: 20): 20 keys a step, the auto sinks and window included", async () => {
    const stats = await statsOf("attention: tokenselect(top_k: 20)", join(tmp, "tokenselect"));
    expect(stats.attendedKeys).toEqual({ tokenselect: { layers: 2, steps: MAX_TOKENS - 1, mean: 20, min: 20, max: 20 } });
  });

  it("tokenselect with explicit sinks and window: they are part of top_k", async () => {
    const stats = await statsOf("attention: tokenselect(top_k: 30, sinks: 4, window: 16)", join(tmp, "tokenselect-explicit"));
    expect(stats.attendedKeys?.["tokenselect"]).toMatchObject({ min: 30, max: 30 });
  });

  it("tokenselect(top_k: 25%): a quarter of the context, rounded up", async () => {
    const stats = await statsOf("attention: tokenselect(top_k: 25%)", join(tmp, "tokenselect-share"));
    // Decode steps see 41 .. 40 + MAX_TOKENS - 1 keys.
    expect(stats.attendedKeys?.["tokenselect"]).toMatchObject({ min: Math.ceil(41 / 4), max: Math.ceil((40 + MAX_TOKENS - 1) / 4) });
  });

  it("tidal(top_k: 8) on a 2-layer model: the default full and selection layers fit it (layer 0 selects), the sparse layer attends 8", async () => {
    const stats = await statsOf("attention: tidal(top_k: 8)", join(tmp, "tidal"));
    expect(stats.attendedKeys).toEqual({ tidal: { layers: 1, steps: MAX_TOKENS - 1, mean: 8, min: 8, max: 8 } });
  });

  it("streaming(sinks: 4, window: 12): 16 keys a step", async () => {
    const stats = await statsOf("kv: streaming(sinks: 4, window: 12)", join(tmp, "streaming"));
    expect(stats.attendedKeys?.["streaming-llm"]).toMatchObject({ layers: 2, min: 16, max: 16 });
  });

  it("a dense model reports nothing", async () => {
    expect((await statsOf("kv: full", join(tmp, "dense"))).attendedKeys).toBeUndefined();
  });
});
