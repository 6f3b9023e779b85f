// A compiled pipeline with speculation keeps what it measured and learned in warm-state.json
// beside its driver: written after a request, read by the next process (here: a second
// createPipeline, whose model objects are new), dropped by resetWarmState. Output stays the
// greedy tokens.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { compileSource } from "../compiler/pipeline/compile.ts";
import { loadCompiled } from "../compiler/pipeline/run.ts";
import { tempDir } from "./helpers/tmp.ts";

const ROOT = resolve(import.meta.dirname, "..");
const EXPECTED = JSON.parse(readFileSync(join(ROOT, "test/fixtures/reference/llama-dynamo/expected.json"), "utf8")) as { prompts: { input_ids: number[]; greedy: number[] }[] };

describe("warm state of a compiled pipeline", () => {
  it("lookup: saved after a request, restored by the next pipeline, reset on request", async () => {
    const tmp = tempDir("pipec-warm-pipe-");
    const source = `pipeline warm {
  model llm = onnx(${JSON.stringify(join(ROOT, "test/fixtures/reference/llama-dynamo/model.onnx"))})
  tokenizer tok = ids
  stage decode = generate(llm, tok) {
    speculate: lookup
    max_tokens: 24
  }
}
`;
    const out = join(tmp, "out");
    const compiled = await compileSource(source, join(tmp, "warm.pipe"), { outDir: out });
    expect(compiled.diagnostics).toEqual([]);
    const driver = readFileSync(join(out, "driver.ts"), "utf8");
    expect(driver).toContain('const speculate = { kind: "lookup", maxNgram: 3, draftLength: "adaptive", adaptive: { threshold: 0.3, min: 2, max: 20 } } as const;');
    expect(driver).toContain('WarmState.open(file("./warm-state.json")');
    // The driver type-checks (its speculation settings are one constant, shared by the warm state and every request).
    const tsconfig = {
      compilerOptions: { target: "ES2023", module: "nodenext", moduleResolution: "nodenext", strict: true, noEmit: true, allowImportingTsExtensions: true, skipLibCheck: true, types: ["node"], typeRoots: [join(ROOT, "node_modules/@types")] },
      files: ["driver.ts"],
    };
    writeFileSync(join(out, "tsconfig.json"), JSON.stringify(tsconfig));
    expect(() => execFileSync(join(ROOT, "node_modules/.bin/tsc"), ["-p", join(out, "tsconfig.json")], { encoding: "utf8" })).not.toThrow();
    const file = join(out, "warm-state.json");
    const { input_ids, greedy } = EXPECTED.prompts[1]!;
    const run = async (options: { resetWarmState?: boolean } = {}) => {
      const pipeline = await loadCompiled(out, { device: "cpu", ...options });
      let tokens: number[] = [];
      let policy: string | undefined;
      for await (const event of pipeline.generate(input_ids)) if (event.kind === "end") [tokens, policy] = [event.tokens, event.stats.speculative?.policy];
      await pipeline.close();
      return { tokens, policy };
    };
    expect(existsSync(file)).toBe(false);
    expect(await run()).toEqual({ tokens: greedy, policy: "adaptive" });
    const first = JSON.parse(readFileSync(file, "utf8")) as { entries: Record<string, { cost?: unknown; guards?: Record<string, unknown> }> };
    const [entry] = Object.values(first.entries);
    expect(entry!.cost).toBeDefined();
    expect(Object.keys(entry!.guards!)).toEqual(["lookup 3"]);
    expect(await run()).toEqual({ tokens: greedy, policy: "adaptive" });
    const second = JSON.parse(readFileSync(file, "utf8")) as typeof first;
    // The second process started from the first one's cost line (restored, not measured again).
    expect(Object.values(second.entries)[0]!.cost).toEqual(entry!.cost);
    expect(await run({ resetWarmState: true })).toEqual({ tokens: greedy, policy: "adaptive" });
    const reset = JSON.parse(readFileSync(file, "utf8")) as typeof first;
    expect(Object.values(reset.entries)[0]!.cost).not.toEqual(entry!.cost); // measured again
  });
});
