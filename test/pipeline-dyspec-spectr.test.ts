// DySpec and SpecTr requested from a .pipe: the examples compile (tree-attention-mask on the
// target, the draft model opened by the driver) and run. DySpec gives exactly the greedy tokens
// of plain decoding on the same compiled model, from Token Recycling's table and from a draft
// model; SpecTr samples, and the same seed gives the same tokens in a fresh pipeline. A stage
// whose decoding the method does not define is refused at the `speculate:` value.
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { compileFile, compileSource } from "../compiler/pipeline/compile.ts";
import { loadCompiled } from "../compiler/pipeline/run.ts";
import { DecoderModel } from "../runtime/decoder.ts";
import { Generator } from "../runtime/generate.ts";
import { loadTokenizer, type GenerationStats, type SamplingConfig } from "../runtime/index.ts";
import { tempDir } from "./helpers/tmp.ts";
import { expectTypeChecks } from "./helpers/type-check.ts";

const ROOT = resolve(import.meta.dirname, "..");
const LLAMA = JSON.parse(readFileSync(join(ROOT, "test/fixtures/reference/llama-dynamo/expected.json"), "utf8")) as { prompts: { input_ids: number[]; greedy: number[] }[] };
const OPEN = { device: "cpu" as const, threads: 1 };

/** Compiles `examples/<name>` into `dir`, with no diagnostics. */
async function compileExample(name: string, dir: string): Promise<string> {
  const out = join(dir, name.replace(/\.pipe$/, ""));
  const result = await compileFile(join(ROOT, "examples", name), { outDir: out });
  expect(result.diagnostics).toEqual([]);
  return out;
}

/** One request through a freshly opened compiled pipeline. */
async function runPipeline(out: string, prompt: string | number[], options: { maxTokens?: number; sampling?: SamplingConfig } = {}): Promise<{ tokens: number[]; stats: GenerationStats }> {
  const pipeline = await loadCompiled(out, OPEN);
  try {
    for await (const event of pipeline.generate(prompt, options)) if (event.kind === "end") return { tokens: event.tokens, stats: event.stats };
    throw new Error("no end event");
  } finally {
    await pipeline.close();
  }
}

/**
 * The first two llama prompts through the compiled pipeline give exactly the tokens of plain
 * decoding of its own target model (24 tokens), which are the recorded greedy ones; `check`
 * looks at each request's stats.
 */
async function expectPlainGreedy(out: string, check: (stats: GenerationStats) => void): Promise<void> {
  const prompts = LLAMA.prompts.slice(0, 2);
  const plain = await plainGreedy(out, prompts.map((p) => p.input_ids), 24);
  for (const [i, { input_ids, greedy }] of prompts.entries()) {
    const { tokens, stats } = await runPipeline(out, input_ids);
    expect(tokens).toEqual(plain[i]);
    expect(tokens).toEqual(greedy);
    check(stats);
  }
}

/** Plain greedy decoding (no speculation) of the compiled pipeline's target model. */
async function plainGreedy(out: string, prompts: (string | number[])[], maxTokens: number, tokenizer?: string): Promise<number[][]> {
  const model = await DecoderModel.open(join(out, "models/llm/model.onnx"), OPEN);
  try {
    const generator = new Generator(model, tokenizer ? loadTokenizer(join(out, tokenizer)) : undefined);
    const tokens = [];
    for (const prompt of prompts) tokens.push((await generator.run(prompt, { maxTokens })).tokens);
    return tokens;
  } finally {
    await model.release();
  }
}

describe("speculate: dyspec from a .pipe", () => {
  const dir = tempDir("pipec-dyspec-pipe-");

  it("examples/story-dyspec.pipe (grown from Token Recycling's table): plain decoding's greedy tokens on the same compiled model, with drafts verified", async () => {
    const out = await compileExample("story-dyspec.pipe", dir);
    const manifest = readFileSync(join(out, "manifest.json"), "utf8");
    expect(manifest).toContain('"tree-attention-mask"');
    const prompts = ["Fellow-Citizens of the Senate and House of Representatives:", "The state of the Union is"];
    const plain = await plainGreedy(out, prompts, 64, "tokenizers/tok/tokenizer.json");
    let drafted = 0;
    for (const [i, prompt] of prompts.entries()) {
      const { tokens, stats } = await runPipeline(out, prompt);
      expect(tokens, prompt).toEqual(plain[i]);
      expect(stats.speculative?.source).toBe("dyspec on recycle");
      drafted += stats.speculative!.draftedTokens;
    }
    expect(drafted).toBeGreaterThan(0);
  });

  it("a fixed node budget: the greedy tokens, with drafts verified", async () => {
    const source = `pipeline grown {
  model llm = onnx(${JSON.stringify(join(ROOT, "test/fixtures/reference/llama-dynamo/model.onnx"))})
  tokenizer tok = ids
  stage decode = generate(llm, tok) {
    speculate: dyspec(nodes: 12)
    max_tokens: 24
  }
}
`;
    const out = join(dir, "grown");
    expect((await compileSource(source, join(dir, "grown.pipe"), { outDir: out })).diagnostics).toEqual([]);
    expect(readFileSync(join(out, "driver.ts"), "utf8")).toContain('const speculate = { kind: "recycle", topK: 8, tree: 12, grow: "dyspec" } as const;');
    await expectPlainGreedy(out, (stats) => {
      expect(stats.speculative).toMatchObject({ source: "dyspec on recycle", policy: "fixed" });
      expect(stats.speculative!.draftedTokens).toBeGreaterThan(0);
    });
  });

  it("examples/speculate-dyspec.pipe (a draft model): the driver opens the draft, and the tokens are plain decoding's", async () => {
    const out = await compileExample("speculate-dyspec.pipe", dir);
    expect(readFileSync(join(out, "driver.ts"), "utf8")).toContain('const speculate = { kind: "dyspec", model: draftModel, budget: 16 } as const;');
    await expectPlainGreedy(out, (stats) => {
      expect(stats.speculative?.source).toBe("dyspec");
      expect(stats.speculative!.acceptedTokens).toBeGreaterThan(0);
    });
  });
});

describe("the drivers of dyspec and spectr with a draft model", () => {
  it("type-check with tsc (the draft model and the speculation settings reach the warm state and every request)", async () => {
    const dir = tempDir("pipec-dyspec-spectr-tsc-");
    const outs = [await compileExample("speculate-dyspec.pipe", dir), await compileExample("speculate-spectr.pipe", dir)];
    expectTypeChecks(outs.map((out) => join(out, "driver.ts")));
  });
});

describe("speculate: spectr from a .pipe", () => {
  const dir = tempDir("pipec-spectr-pipe-");

  it("examples/speculate-spectr.pipe: samples with verified drafts, the same seed gives the same tokens in a fresh pipeline, another seed others", async () => {
    const out = await compileExample("speculate-spectr.pipe", dir);
    expect(readFileSync(join(out, "driver.ts"), "utf8")).toContain('const speculate = { kind: "spectr", model: draftModel, drafts: 4, draftLength: 4 } as const;');
    const prompt = LLAMA.prompts[0]!.input_ids;
    const first = await runPipeline(out, prompt);
    expect(first.tokens).toHaveLength(24);
    expect(first.stats.speculative).toMatchObject({ source: "spectr" });
    expect(first.stats.speculative!.acceptedTokens).toBeGreaterThan(0);
    // Sampled, not the greedy continuation.
    expect(first.tokens).not.toEqual(LLAMA.prompts[0]!.greedy);
    expect((await runPipeline(out, prompt)).tokens).toEqual(first.tokens);
    expect((await runPipeline(out, prompt, { sampling: { temperature: 0.8, seed: 8 } })).tokens).not.toEqual(first.tokens);
  });

  it("with greedy decoding: an error at the speculate: value, and nothing written", async () => {
    const fixture = (name: string) => JSON.stringify(join(ROOT, "test/fixtures/reference", name, "model.onnx"));
    const source = `pipeline greedy_spectr {
  model llm = onnx(${fixture("llama-dynamo")})
  model small = onnx(${fixture("llama-torchscript")})
  tokenizer tok = ids
  stage decode = generate(llm, tok) {
    speculate: spectr(model: small)
  }
}
`;
    const out = join(dir, "refused");
    const result = await compileSource(source, join(dir, "refused.pipe"), { outDir: out });
    expect(result.diagnostics.map((d) => `${d.span?.line}:${d.span?.column}: ${d.message}`)).toEqual([
      "6:16: speculate: spectr needs sampled decoding (sampling: sample(...)), not sampling: greedy: it samples k drafts i.i.d., and with greedy decoding they would all be one draft",
    ]);
    expect(existsSync(out)).toBe(false);
  });
});
