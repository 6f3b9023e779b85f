// A compiled pipeline with speculation keeps what it measured and learned in warm-state.json
// beside its driver: written after a request, read by the next process (here: a second
// createPipeline, whose model objects are new), dropped by resetWarmState and by
// `pipec run|generate --reset-warm-state`. What is missing is measured when the pipeline opens,
// before a request's clock starts: each request's stats say what opening measured (warmState)
// and that the request measured nothing (speculative.measureMs). Output stays the greedy tokens.
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { compileSource } from "../compiler/pipeline/compile.ts";
import { loadCompiled } from "../compiler/pipeline/run.ts";
import { main } from "../compiler/cli/main.ts";
import { DecoderModel } from "../runtime/decoder.ts";
import { Generator } from "../runtime/generate.ts";
import type { GenerationStats } from "../runtime/index.ts";
import { tempDir } from "./helpers/tmp.ts";
import { expectTypeChecks } from "./helpers/type-check.ts";

const ROOT = resolve(import.meta.dirname, "..");
const EXPECTED = JSON.parse(readFileSync(join(ROOT, "test/fixtures/reference/llama-dynamo/expected.json"), "utf8")) as { prompts: { input_ids: number[]; greedy: number[] }[] };

/** A one-stage pipeline on the llama reference export that speculates by `method`. */
function warmPipe(method: string): string {
  return `pipeline warm {
  model llm = onnx(${JSON.stringify(join(ROOT, "test/fixtures/reference/llama-dynamo/model.onnx"))})
  tokenizer tok = ids
  stage decode = generate(llm, tok) {
    speculate: ${method}
    max_tokens: 24
  }
}
`;
}

describe("warm state of a compiled pipeline", () => {
  it("lookup: saved after a request, restored by the next pipeline, reset on request", async () => {
    const tmp = tempDir("pipec-warm-pipe-");
    const source = warmPipe("lookup");
    const out = join(tmp, "out");
    const compiled = await compileSource(source, join(tmp, "warm.pipe"), { outDir: out });
    expect(compiled.diagnostics).toEqual([]);
    const driver = readFileSync(join(out, "driver.ts"), "utf8");
    expect(driver).toContain('const speculate = { kind: "lookup", maxNgram: 3, draftLength: "adaptive", adaptive: { threshold: 0.3, min: 2, max: 20 } } as const;');
    expect(driver).toContain('WarmState.open(file("./warm-state.json")');
    // The driver type-checks (its speculation settings are one constant, shared by the warm state and every request).
    expectTypeChecks([join(out, "driver.ts")]);
    const file = join(out, "warm-state.json");
    const { input_ids, greedy } = EXPECTED.prompts[1]!;
    let stats: GenerationStats | undefined;
    const run = async (options: { resetWarmState?: boolean } = {}) => {
      const pipeline = await loadCompiled(out, { device: "cpu", ...options });
      let tokens: number[] = [];
      let policy: string | undefined;
      for await (const event of pipeline.generate(input_ids)) if (event.kind === "end") [tokens, policy, stats] = [event.tokens, event.stats.speculative?.policy, event.stats];
      await pipeline.close();
      return { tokens, policy };
    };
    expect(existsSync(file)).toBe(false);
    expect(await run()).toEqual({ tokens: greedy, policy: "adaptive" });
    // A fresh process with no file: the cost line is measured as the pipeline opens, and the request measures nothing.
    expect(stats!.warmState).toMatchObject({ reset: false, restored: false, measuredAtOpen: ["target cost"] });
    expect(stats!.warmState!.openMs).toBeGreaterThan(0);
    expect(stats!.speculative!.measureMs).toBe(0);
    const first = JSON.parse(readFileSync(file, "utf8")) as { entries: Record<string, { cost?: unknown; guards?: Record<string, unknown> }> };
    const [entry] = Object.values(first.entries);
    expect(entry!.cost).toBeDefined();
    expect(Object.keys(entry!.guards!)).toEqual(["lookup 3"]);
    expect(await run()).toEqual({ tokens: greedy, policy: "adaptive" });
    expect(stats!.warmState).toMatchObject({ reset: false, restored: true, measuredAtOpen: [] });
    const second = JSON.parse(readFileSync(file, "utf8")) as typeof first;
    // The second process started from the first one's cost line (restored, not measured again).
    expect(Object.values(second.entries)[0]!.cost).toEqual(entry!.cost);
    expect(await run({ resetWarmState: true })).toEqual({ tokens: greedy, policy: "adaptive" });
    expect(stats!.warmState).toMatchObject({ reset: true, restored: false, measuredAtOpen: ["target cost"] });
    const reset = JSON.parse(readFileSync(file, "utf8")) as typeof first;
    expect(Object.values(reset.entries)[0]!.cost).not.toEqual(entry!.cost); // measured again
  });

  it("recycle: the cost curve is measured when the pipeline opens, never in the first request (which, without a warm state, measures it)", async () => {
    const tmp = tempDir("pipec-warm-recycle-");
    const source = warmPipe("recycle");
    const out = join(tmp, "out");
    expect((await compileSource(source, join(tmp, "warm.pipe"), { outDir: out })).diagnostics).toEqual([]);
    const { input_ids, greedy } = EXPECTED.prompts[0]!;
    const pipeline = await loadCompiled(out, { device: "cpu" });
    let stats: GenerationStats | undefined;
    for await (const event of pipeline.generate(input_ids)) if (event.kind === "end") [stats] = [event.stats];
    await pipeline.close();
    expect(stats!.warmState).toMatchObject({ reset: false, restored: false, measuredAtOpen: ["recycle cost"] });
    expect(stats!.speculative!.measureMs).toBe(0);
    // The control: the same compiled model run by a bare Generator (no warm state) measures inside its first request.
    const model = await DecoderModel.open(join(out, "models/llm/model.onnx"), { device: "cpu" });
    try {
      const bare = await new Generator(model).run(input_ids, { maxTokens: 24, speculate: { kind: "recycle" } });
      expect(bare.tokens).toEqual(greedy);
      expect(bare.stats.speculative!.measureMs).toBeGreaterThan(0);
      expect(bare.stats.warmState).toBeUndefined();
      expect((await new Generator(model).run(input_ids, { maxTokens: 24, speculate: { kind: "recycle" } })).stats.speculative!.measureMs).toBe(0);
    } finally {
      await model.release();
    }
  });

  it("pipec run --reset-warm-state says so on stderr and starts from nothing", async () => {
    const cache = tempDir("pipec-warm-cli-");
    const run = async (...flags: string[]) => {
      let stdout = "";
      let stderr = "";
      const code = await main(["run", join(ROOT, "examples/speculate-recycle.pipe"), "--ids", EXPECTED.prompts[0]!.input_ids.join(","), "--json", "--device", "cpu", "--cache-dir", cache, ...flags], { out: (t) => void (stdout += t), err: (t) => void (stderr += t) });
      expect(code, stderr).toBe(0);
      return { stats: (JSON.parse(stdout) as { stats: GenerationStats }).stats, stderr };
    };
    expect((await run()).stats.warmState).toMatchObject({ reset: false, restored: false, measuredAtOpen: ["recycle cost"] });
    expect((await run()).stats.warmState).toMatchObject({ reset: false, restored: true, measuredAtOpen: [] });
    const reset = await run("--reset-warm-state");
    expect(reset.stderr).toMatch(/^pipec: warm state reset: discarding .*warm-state\.json; speculation measures and learns from nothing$/m);
    expect(reset.stats.warmState).toMatchObject({ reset: true, restored: false, measuredAtOpen: ["recycle cost"] });
    expect(reset.stats.speculative!.measureMs).toBe(0);
  });

  it("pipec generate --speculate ... --reset-warm-state resets the flags' compiled pipeline", async () => {
    const cache = tempDir("pipec-warm-generate-");
    const generate = async (...flags: string[]) => {
      let stdout = "";
      let stderr = "";
      const args = ["generate", join(ROOT, "test/fixtures/reference/llama-dynamo/model.onnx"), "--ids", "1,5,9,23", "--max-tokens", "8", "--speculate", "lookup", "--json", "--device", "cpu", "--cache-dir", cache, ...flags];
      const code = await main(args, { out: (t) => void (stdout += t), err: (t) => void (stderr += t) });
      expect(code, stderr).toBe(0);
      return { warmState: (JSON.parse(stdout) as { stats: GenerationStats }).stats.warmState, stderr };
    };
    expect((await generate()).warmState).toMatchObject({ restored: false, measuredAtOpen: ["target cost"] });
    expect((await generate()).warmState).toMatchObject({ restored: true, measuredAtOpen: [] });
    const reset = await generate("--reset-warm-state");
    expect(reset.stderr).toContain("pipec: warm state reset: discarding ");
    expect(reset.warmState).toMatchObject({ reset: true, restored: false, measuredAtOpen: ["target cost"] });
  });
});
