// `pipec generate` with optimisation flags: each flag is parsed like a .pipe method, compiled as the
// equivalent one-stage pipeline through pipec run's cache, and run by the compiled driver.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { compilePipeline, loadPipeline, pipelineSourceFromFlags } from "../compiler/api.ts";
import { generateCommand } from "../compiler/cli/commands/generate.ts";
import { main } from "../compiler/cli/main.ts";
import { REFERENCE_DIR } from "./helpers/runtime-models.ts";

const MODEL = join(REFERENCE_DIR, "llama-dynamo/model.onnx");
const CACHE = mkdtempSync(join(tmpdir(), "pipec-generate-"));
afterAll(() => rmSync(CACHE, { recursive: true, force: true }));

// A prompt that repeats itself, so prompt lookup finds n-grams to draft from.
const IDS = ["--ids", "5,6,7,5,6,7,5,6", "--max-tokens", "48", "--device", "cpu"];

async function generate(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await generateCommand.run([MODEL, ...args, "--cache-dir", CACHE], { out: (t) => void (out += t), err: (t) => void (err += t) });
  return { code, out, err };
}

async function json(args: string[]): Promise<{ tokens: number[]; text: string; finishReason: string; stats: Record<string, unknown> }> {
  const { code, out } = await generate([...IDS, ...args, "--json"]);
  expect(code).toBe(0);
  return JSON.parse(out);
}

describe("pipec generate with optimisation flags", async () => {
  const dense = await json([]);

  it("--speculate 'lookup(ngram: 3)' gives exactly greedy's tokens, with drafts accepted", async () => {
    const lookup = await json(["--speculate", "lookup(ngram: 3)"]);
    expect(lookup.tokens).toEqual(dense.tokens);
    const speculative = lookup.stats["speculative"] as { callsWithDraft: number; acceptedTokens: number; targetCalls: number };
    expect(speculative.callsWithDraft).toBeGreaterThan(0);
    expect(speculative.acceptedTokens).toBeGreaterThan(0);
    expect(speculative.targetCalls).toBeLessThan(dense.tokens.length);
    expect(dense.stats["speculative"]).toBeUndefined();
  });

  it("--kv 'streaming(...)' with a window beyond the whole sequence equals dense decoding", async () => {
    const streaming = await json(["--kv", "streaming(sinks: 4, window: 1000)"]);
    expect(streaming.tokens).toEqual(dense.tokens);
  });

  it("--kv 'streaming(...)' with a narrow window evicts: other tokens, less KV memory", async () => {
    const narrow = await json(["--kv", "streaming(sinks: 4, window: 8)"]);
    expect(narrow.tokens).not.toEqual(dense.tokens);
    expect(narrow.stats["peakKvBytes"]).toBeLessThan(dense.stats["peakKvBytes"] as number);
  });

  it("--speculate 'draft(model: draft)' names the --draft-model and is lossless too", async () => {
    const draft = await json(["--draft-model", join(REFERENCE_DIR, "llama-torchscript/model.onnx"), "--speculate", "draft(model: draft, k: 3)"]);
    expect(draft.tokens).toEqual(dense.tokens);
    expect(draft.stats["speculative"]).toMatchObject({ source: "draft" });
  });

  it("--json keeps its shape on both paths", async () => {
    const compiled = await json(["--speculate", "lookup(ngram: 3)"]);
    expect(Object.keys(dense)).toEqual(["tokens", "text", "finishReason", "stats"]);
    expect(Object.keys(compiled)).toEqual(["tokens", "text", "finishReason", "stats"]);
    expect(compiled).toMatchObject({ text: "", finishReason: "max-tokens", stats: { promptTokens: 8, generatedTokens: 48, device: "cpu" } });
  });

  it("compiles the pipeline --print-pipe shows into the cache, and reuses it", async () => {
    await json(["--speculate", "lookup(ngram: 3)"]);
    const printed = await generate([...IDS, "--speculate", "lookup(ngram: 3)", "--print-pipe"]);
    expect(printed.code).toBe(0);
    expect(printed.out).toBe(`# pipec generate model.onnx, as a pipeline
pipeline generate {
  model llm = onnx(${JSON.stringify(MODEL)})
  tokenizer tok = ids

  stage decode = generate(llm, tok) {
    speculate: lookup(ngram: 3)
    max_tokens: 48
    device: cpu
  }
}
`);
    const pipe = readdirSync(CACHE).find((f) => f.endsWith(".pipe") && readFileSync(join(CACHE, f), "utf8") === printed.out);
    expect(pipe).toBeDefined();
    const driver = join(CACHE, pipe!.replace(/\.pipe$/, ""), "driver.ts");
    const compiledAt = statSync(driver).mtimeMs;
    await json(["--speculate", "lookup(ngram: 3)"]);
    expect(statSync(driver).mtimeMs).toBe(compiledAt);
  });

  it("a misspelt parameter is reported in the flag's text, before any model is read", async () => {
    const { code, out, err } = await generate([...IDS, "--kv", "streaming(sinks: 4, windw: 60)"]);
    expect(code).toBe(1);
    expect(out).toBe("");
    expect(err).toBe(`--kv:1:21: error: kv: streaming has no parameter 'windw' (did you mean 'window'?)
  streaming(sinks: 4, windw: 60)
                      ^~~~~
`);
  });

  it("a check against the model points into the flag too", async () => {
    const { code, err } = await generate([...IDS, "--attention", "tidal(select_layers: [9])"]);
    expect(code).toBe(1);
    expect(err).toBe(`--attention:1:22: error: tidal: select_layers: layer 9 is out of range: model 'llm' has 2 layers (0..1)
  tidal(select_layers: [9])
                       ^~~
`);
  });

  it("--sampling takes the .pipe method and the runtime's key=value form alike", async () => {
    const method = await json(["--sampling", "sample(temperature: 0.7, top_k: 20, seed: 4)"]);
    const legacy = await json(["--sampling", "temperature=0.7,top_k=20,seed=4"]);
    expect(method.tokens).toEqual(legacy.tokens);
    expect(method.tokens).not.toEqual(dense.tokens);
    const printed = await generate(["--sampling", "temperature=0.7,top_k=20,seed=4", "--kv", "full", "--print-pipe"]);
    expect(printed.out).toContain("    sampling: sample(temperature: 0.7, top_k: 20, seed: 4)\n");
  });

  it("usage errors exit 2, a bad method 1", async () => {
    const quiet = { out: () => {}, err: () => {} };
    expect(await main(["generate", MODEL, "--ids", "1", "--kv"], quiet)).toBe(2);
    expect(await main(["generate", MODEL, "--kv", "full"], quiet)).toBe(2);
    expect(await main(["generate", MODEL, "--ids", "1", "--speculate", "lokup"], quiet)).toBe(1);
  });
});

describe("the programmatic API mirrors generate", () => {
  it("compiles generate's pipeline from source text and runs the loaded folder", async () => {
    const source = await pipelineSourceFromFlags({ model: MODEL, methods: { speculate: "lookup(ngram: 3)" }, maxTokens: 12, device: "cpu" });
    const compiled = await compilePipeline({ source, file: join(CACHE, "api.pipe") }, { outDir: join(CACHE, "api") });
    expect(compiled.diagnostics).toEqual([]);
    const pipeline = await loadPipeline(compiled.outDir!);
    let tokens: number[] = [];
    try {
      for await (const event of pipeline.generate([5, 6, 7, 5, 6, 7, 5, 6])) if (event.kind === "end") tokens = event.tokens;
    } finally {
      await pipeline.close();
    }
    const direct = await generate(["--ids", "5,6,7,5,6,7,5,6", "--max-tokens", "12", "--device", "cpu", "--json"]);
    expect(tokens).toEqual(JSON.parse(direct.out).tokens);
  });

  it("compilePipeline reports a bad source in its diagnostics, writing nothing", async () => {
    const result = await compilePipeline({ source: "pipeline p {\n  model m = onnx(\"missing.onnx\")\n}\n", file: join(CACHE, "bad.pipe") }, { outDir: join(CACHE, "bad") });
    expect(result.outDir).toBeUndefined();
    expect(result.diagnostics.some((d) => d.severity === "error")).toBe(true);
    expect(readdirSync(CACHE)).not.toContain("bad");
  });
});

// pipec's own small model (examples/models/sotu-tiny, trained on State of the Union addresses):
// a text prompt end to end, through a .pipe and through generate's options.
const STORY = join(import.meta.dirname, "../examples/models/sotu-tiny");
const PROMPT = "Fellow-Citizens of the Senate and House of Representatives:";

describe.skipIf(!existsSync(join(STORY, "model.onnx")))("a text prompt on examples/models/sotu-tiny", () => {
  async function pipec(...args: string[]): Promise<{ tokens: number[]; text: string; stats: { speculative?: { targetCalls: number } } }> {
    let out = "";
    const code = await main([...args, "--prompt", PROMPT, "--device", "cpu", "--json"], { out: (t) => void (out += t), err: () => {} });
    expect(code).toBe(0);
    return JSON.parse(out);
  }
  const example = (name: string) => join(import.meta.dirname, "../examples", name);
  const tokenizer = join(STORY, "tokenizer.json");

  it("pipec run examples/story.pipe and pipec generate --tokenizer --prompt give the same tokens and English text", async () => {
    const run = await pipec("run", example("story.pipe"), "--cache-dir", CACHE);
    const generated = await pipec("generate", join(STORY, "model.onnx"), "--tokenizer", tokenizer, "--max-tokens", "64");
    expect(run.tokens).toHaveLength(64);
    expect(generated.tokens).toEqual(run.tokens);
    expect(generated.text).toBe(run.text);
    // A trained model writes words, not byte soup: most of the text is lower-case words.
    expect(run.text.match(/\b[a-z]+\b/g)!.length).toBeGreaterThan(30);
  });

  it("prompt lookup, from story-lookup.pipe or --speculate, gives the same text in fewer model calls", async () => {
    const plain = await pipec("run", example("story.pipe"), "--cache-dir", CACHE);
    const run = await pipec("run", example("story-lookup.pipe"), "--cache-dir", CACHE);
    const generated = await pipec("generate", join(STORY, "model.onnx"), "--tokenizer", tokenizer, "--max-tokens", "64", "--speculate", "lookup(ngram: 3, max_draft: 8)", "--cache-dir", CACHE);
    expect(run.tokens).toEqual(plain.tokens);
    expect(generated.tokens).toEqual(plain.tokens);
    expect(run.stats.speculative!.targetCalls).toBeLessThan(48);
    expect(generated.stats.speculative!.targetCalls).toBe(run.stats.speculative!.targetCalls);
  });
});
