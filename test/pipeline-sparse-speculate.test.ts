// Sparse attention and speculative decoding in one .pipe (compiler/pipeline/method-compatibility.ts):
// every pair of {tidal, tokenselect, streaming} x {lookup, draft, self, recycle, dyspec} on the llama
// reference export and sotu-tiny. A pair that compiles must be lossless relative to the SAME
// sparse model: its greedy tokens equal those of the sparse method alone, at a budget small
// enough that the method drops keys (its tokens differ from dense ones). A refused pair fails
// to compile with one error at the `speculate:` value.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { main } from "../compiler/cli/main.ts";
import { compileSource } from "../compiler/pipeline/compile.ts";
import { analyzeSource } from "../compiler/pipeline/frontend.ts";
import { loadCompiled } from "../compiler/pipeline/run.ts";
import { tempDir } from "./helpers/tmp.ts";

const ROOT = resolve(import.meta.dirname, "..");
/** Where the sources say they live: model paths are relative to examples/, as in the examples. */
const PIPE = join(ROOT, "examples", "sparse-speculate-matrix.pipe");

interface Case {
  name: string;
  model: string;
  /** A second model of the same vocabulary for `speculate: draft`. */
  draftModel: string;
  tokenizer: string;
  prompt: string | number[];
}

const CASES: Case[] = [
  {
    name: "llama reference export",
    model: "../test/fixtures/reference/llama-dynamo/model.onnx",
    draftModel: "../test/fixtures/reference/llama-torchscript/model.onnx",
    tokenizer: "ids",
    prompt: [1, 5, 9, 23, 5, 9, 23, 40, 1, 5, 9, 23, 7, 8, 9, 10, 11, 5, 9],
  },
  {
    name: "sotu-tiny",
    model: "models/sotu-tiny/model.onnx",
    // The same file as a second model: the check wants a draft that is not the stage's model by name.
    draftModel: "models/sotu-tiny/model.onnx",
    tokenizer: 'hf("models/sotu-tiny/tokenizer.json")',
    prompt: "Fellow-Citizens of the Senate and House of Representatives: the state of the Union is strong, and the state of the Union",
  },
];

/** Budgets far below the ~30-token contexts, so every method drops keys. */
const SPARSE = {
  tidal: "attention: tidal(top_k: 8, full_layers: 0, select_layers: [0])",
  tokenselect: "attention: tokenselect(top_k: 10, sinks: 2, window: 4)",
  streaming: "kv: streaming(sinks: 2, window: 8)",
} as const;

const SPECULATE = {
  lookup: "speculate: lookup(ngram: 2, max_draft: 4)",
  draft: "speculate: draft(model: dm, k: 3)",
  self: "speculate: self(skip: [1], k: 3)",
  recycle: "speculate: recycle(top_k: 8, tree: auto)",
  "dyspec on recycle": "speculate: dyspec(source: recycle, nodes: 8)",
  "dyspec with a draft model": "speculate: dyspec(source: dm, nodes: 8)",
} as const;

const MAX_TOKENS = 40;

function pipeSource(c: Case, lines: string[]): string {
  const body = lines.map((l) => `    ${l}\n`).join("");
  return `pipeline matrix {\n  model llm = onnx("${c.model}")\n  model dm = onnx("${c.draftModel}")\n  tokenizer tok = ${c.tokenizer}\n\n  stage decode = generate(llm, tok) {\n${body}    max_tokens: ${MAX_TOKENS}\n  }\n}\n`;
}

interface Run {
  tokens: number[];
  speculative?: { draftedTokens: number; acceptedTokens: number };
}

describe.each(CASES)("sparse attention with speculation on $name", (c) => {
  const out = tempDir("pipec-sparse-speculate-");
  let compiles = 0;

  async function compileAndRun(lines: string[]): Promise<Run> {
    const result = await compileSource(pipeSource(c, lines), PIPE, { outDir: join(out, `c${compiles++}`) });
    expect(result.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
    const pipeline = await loadCompiled(result.outDir!, { device: "cpu" });
    try {
      for await (const event of pipeline.generate(c.prompt, { maxTokens: MAX_TOKENS })) {
        if (event.kind === "end") return { tokens: event.tokens, speculative: event.stats.speculative };
      }
      throw new Error("no end event");
    } finally {
      await pipeline.close();
    }
  }

  it("kv: streaming with speculation puts tree-attention-mask ahead of streaming-llm on the target, once", () => {
    for (const [method, request] of Object.entries(SPECULATE)) {
      const ir = analyzeSource(pipeSource(c, [SPARSE.streaming, request]), PIPE).ir!;
      const passes = ir.models.find((m) => m.name === "llm")!.passes.map((p) => p.pass);
      expect(passes, method).toEqual(["lift-attention", "tree-attention-mask", "streaming-llm", "lower-attention", "logits-topk"]);
    }
  });

  it("kv: streaming with every speculation method: exactly streaming's own greedy tokens", async () => {
    const dense = await compileAndRun([]);
    const streaming = await compileAndRun([SPARSE.streaming]);
    expect(streaming.tokens).toHaveLength(MAX_TOKENS);
    expect(streaming.tokens, "the window must drop keys, or the comparison shows nothing").not.toEqual(dense.tokens);
    let accepted = 0;
    for (const [method, request] of Object.entries(SPECULATE)) {
      const speculated = await compileAndRun([SPARSE.streaming, request]);
      expect(speculated.tokens, `streaming + ${method}`).toEqual(streaming.tokens);
      expect(speculated.speculative?.draftedTokens, `streaming + ${method} verified drafts`).toBeGreaterThan(0);
      accepted += speculated.speculative!.acceptedTokens;
    }
    // Accepted drafts mean verification steps whose later queries decided tokens too.
    expect(accepted).toBeGreaterThan(0);
  }, 180_000);

  for (const attention of ["tidal", "tokenselect"] as const) {
    it(`attention: ${attention} compiles alone and is refused with every speculation method, at the speculate: value`, async () => {
      expect((await compileAndRun([SPARSE[attention]])).tokens).toHaveLength(MAX_TOKENS);
      for (const [method, request] of Object.entries(SPECULATE)) {
        const source = pipeSource(c, [SPARSE[attention], request]);
        const result = await compileSource(source, PIPE, { outDir: join(out, `refused-${attention}-${method}`) });
        expect(result.outDir).toBeUndefined();
        const errors = result.diagnostics.filter((d) => d.severity === "error");
        expect(errors).toHaveLength(1);
        const name = /speculate: (\w+)/.exec(request)![1]!;
        expect(errors[0]!.message, method).toContain(`speculate: ${name} cannot be combined with attention: ${attention}`);
        const lines = source.split("\n");
        const line = lines.findIndex((l) => l.includes("speculate:"));
        expect(errors[0]!.span).toMatchObject({ line: line + 1, column: lines[line]!.indexOf(name) + 1 });
      }
    }, 120_000);
  }
});

describe("a refused pair on the command line", () => {
  const dir = tempDir("pipec-sparse-speculate-cli-");

  it("pipec check prints one line with file:line:col of the speculate: value and the reason", async () => {
    const file = join(dir, "tidal-lookup.pipe");
    const model = join(ROOT, "test/fixtures/reference/llama-dynamo/model.onnx");
    writeFileSync(file, `pipeline p {\n  model llm = onnx("${model}")\n  tokenizer tok = ids\n  stage decode = generate(llm, tok) {\n    attention: tidal(top_k: 8, full_layers: 0, select_layers: [0])\n    speculate: lookup\n  }\n}\n`);
    let stderr = "";
    let stdout = "";
    const code = await main(["check", file], { out: (t) => void (stdout += t), err: (t) => void (stderr += t) });
    expect(code).toBe(1);
    const text = stdout + stderr;
    expect(text).toContain(`${file}:6:16: error: speculate: lookup cannot be combined with attention: tidal: TidalDecode picks the keys from one query's scores`);
    expect(text).not.toMatch(/\n\s+at /); // no stack trace
  });
});

describe("kv: streaming with speculation on learned positions (GPT-2)", () => {
  const dir = tempDir("pipec-sparse-speculate-gpt2-");

  it("fails to compile with one error at the kv: value, and leaves no output", async () => {
    const model = join(ROOT, "test/fixtures/reference/gpt2-torchscript/model.onnx");
    const source = `pipeline p {\n  model llm = onnx("${model}")\n  tokenizer tok = ids\n  stage decode = generate(llm, tok) {\n    kv: streaming(sinks: 2, window: 8)\n    speculate: lookup\n  }\n}\n`;
    const outDir = join(dir, "out");
    const result = await compileSource(source, join(dir, "gpt2.pipe"), { outDir });
    expect(result.outDir).toBeUndefined();
    const errors = result.diagnostics.filter((d) => d.severity === "error");
    expect(errors).toHaveLength(1);
    expect(errors[0]!.message).toMatch(/^kv: streaming cannot be applied: layer 0: StreamingLLM with speculative verification needs rotary positions/);
    expect(errors[0]!.span).toMatchObject({ line: 5, column: 9 });
    expect(existsSync(outDir)).toBe(false);
    // Without speculation the same model compiles.
    const alone = await compileSource(source.replace("    speculate: lookup\n", ""), join(dir, "gpt2.pipe"), { outDir });
    expect(alone.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
  });
});

describe("examples/story-streaming-lookup.pipe", () => {
  const cache = tempDir("pipec-story-streaming-lookup-");
  const example = join(ROOT, "examples", "story-streaming-lookup.pipe");
  const prompt = "Fellow-Citizens of the Senate and House of Representatives:";

  it("gives exactly the tokens of the same pipeline without speculation, with fewer model calls", async () => {
    let stdout = "";
    let stderr = "";
    const code = await main(["run", example, "--prompt", prompt, "--json", "--device", "cpu", "--cache-dir", cache], { out: (t) => void (stdout += t), err: (t) => void (stderr += t) });
    expect(code, stderr).toBe(0);
    const speculated = JSON.parse(stdout) as { tokens: number[]; stats: { speculative: { acceptedTokens: number; targetCalls: number } } };

    const plainSource = readFileSync(example, "utf8").replace(/^\s*speculate:.*\n/m, "");
    expect(plainSource).not.toContain("speculate:");
    const compiled = await compileSource(plainSource, example, { outDir: join(cache, "plain") });
    const pipeline = await loadCompiled(compiled.outDir!, { device: "cpu" });
    let plain: number[] = [];
    try {
      for await (const event of pipeline.generate(prompt)) if (event.kind === "end") plain = event.tokens;
    } finally {
      await pipeline.close();
    }
    expect(plain).toHaveLength(96); // past sinks + window (36): eviction runs
    expect(speculated.tokens).toEqual(plain);
    expect(speculated.stats.speculative.acceptedTokens).toBeGreaterThan(0);
    expect(speculated.stats.speculative.targetCalls).toBeLessThan(plain.length);
  }, 120_000);
});
