import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { saveModel } from "../graph/onnx/index.ts";
import { buildZooModel, llamaConfig } from "../graph/zoo/index.ts";
import { streamingLlm } from "../passes/kv/streaming-llm.ts";
import { createTreeAttentionMask } from "../passes/speculative/tree-attention-mask.ts";
import { sparsify } from "../test/helpers/sparse-parity.ts";
import { tempDir } from "../test/helpers/tmp.ts";
import { DecoderModel } from "./decoder.ts";
import { isRuntimeError } from "./errors.ts";
import { Generator, type GenerationEvent } from "./generate.ts";
import type { SpeculateOptions } from "./speculative/speculator.ts";
import { GPT2_TOKENIZER, HAVE_SHARED, NO_SHARED, REFERENCE_DIR, SHARED_DECODERS } from "../test/helpers/runtime-models.ts";
import { loadTokenizer, type TextTokenizer } from "./tokenizer.ts";

const MODEL = join(REFERENCE_DIR, "llama-torchscript/model.onnx"); // V = 384
const PROMPT = [7, 101, 33, 250, 12, 90];

function errorOf(run: () => unknown): unknown {
  try {
    run();
  } catch (e) {
    return e;
  }
  throw new Error("expected an error");
}

async function asyncErrorOf(run: () => Promise<unknown>): Promise<unknown> {
  try {
    await run();
  } catch (e) {
    return e;
  }
  throw new Error("expected an error");
}

describe("generation", () => {
  let model: DecoderModel;
  let generator: Generator;
  let greedy: number[];
  beforeAll(async () => {
    model = await DecoderModel.open(MODEL, { device: "cpu", threads: 1 });
    generator = new Generator(model);
    greedy = (await generator.run(PROMPT, { maxTokens: 16, eosTokenIds: [] })).tokens;
  });
  afterAll(async () => model?.release());

  it("stops at max tokens", async () => {
    const result = await generator.run(PROMPT, { maxTokens: 5, eosTokenIds: [] });
    expect(result.tokens).toEqual(greedy.slice(0, 5));
    expect(result.finishReason).toBe("max-tokens");
  });

  it("stops at EOS, which is included in the tokens", async () => {
    const k = greedy.findIndex((t, i) => i >= 2 && !greedy.slice(0, i).includes(t));
    const result = await generator.run(PROMPT, { maxTokens: 16, eosTokenIds: [greedy[k]] });
    expect(result.tokens).toEqual(greedy.slice(0, k + 1));
    expect(result.finishReason).toBe("eos");
  });

  it("streams token events, then one end event with stats", async () => {
    const events: GenerationEvent[] = [];
    for await (const event of generator.stream(PROMPT, { maxTokens: 6, eosTokenIds: [] })) events.push(event);
    expect(events.slice(0, 6).map((e) => e.kind === "token" && e.token)).toEqual(greedy.slice(0, 6));
    const end = events[6];
    expect(events).toHaveLength(7);
    if (end.kind !== "end") throw new Error("last event is not the end");
    expect(end.tokens).toEqual(greedy.slice(0, 6));
    const { stats } = end;
    expect(stats.promptTokens).toBe(PROMPT.length);
    expect(stats.generatedTokens).toBe(6);
    expect(stats.device).toBe("cpu");
    expect(stats.sessionRunMs).toBeGreaterThan(0);
    expect(stats.sessionRunMs + stats.hostMs).toBeCloseTo(stats.totalMs, 6);
    expect(stats.timeToFirstTokenMs).toBeGreaterThanOrEqual(stats.prefillMs);
    expect(stats.decodeTokensPerSecond).toBeGreaterThan(0);
    // 2 layers x (K, V) x 2 heads x 16 x 4 bytes per row; the last token is never fed back: 6 + 5 rows.
    expect(stats.peakKvBytes).toBe(2 * 2 * 2 * 16 * 4 * (PROMPT.length + 5));
  });

  it("cancels through an AbortSignal", async () => {
    const controller = new AbortController();
    const tokens: number[] = [];
    let end: GenerationEvent | undefined;
    for await (const event of generator.stream(PROMPT, { maxTokens: 16, eosTokenIds: [], signal: controller.signal })) {
      if (event.kind === "token") {
        tokens.push(event.token);
        if (tokens.length === 3) controller.abort();
      } else end = event;
    }
    expect(tokens).toEqual(greedy.slice(0, 3));
    expect(end?.kind === "end" && end.finishReason).toBe("aborted");

    const aborted = await generator.run(PROMPT, { signal: AbortSignal.abort() });
    expect(aborted.tokens).toEqual([]);
    expect(aborted.finishReason).toBe("aborted");
  });

  it("seeded sampling is reproducible", async () => {
    const sampling = { temperature: 1.5, topK: 50, topP: 0.95, seed: 11 };
    const a = await generator.run(PROMPT, { maxTokens: 12, eosTokenIds: [], sampling });
    const b = await generator.run(PROMPT, { maxTokens: 12, eosTokenIds: [], sampling });
    const c = await generator.run(PROMPT, { maxTokens: 12, eosTokenIds: [], sampling: { ...sampling, seed: 12 } });
    expect(a.tokens).toEqual(b.tokens);
    expect(a.tokens).not.toEqual(c.tokens);
  });

  it("applies custom logits processors", async () => {
    const banned = greedy[0];
    const ban = (logits: Float32Array) => void (logits[banned] = -Infinity);
    const result = await generator.run(PROMPT, { maxTokens: 8, eosTokenIds: [], processors: [ban] });
    expect(result.tokens).not.toContain(banned);
    expect(result.tokens).toHaveLength(8);
  });

  it("needs a tokenizer for text", async () => {
    const error = await asyncErrorOf(() => generator.run("hello"));
    expect(isRuntimeError(error) && error.code).toBe("no-tokenizer");
  });
});

describe("the model's positions", () => {
  let model: DecoderModel;
  beforeAll(async () => {
    model = await DecoderModel.open(MODEL, { device: "cpu", threads: 1, maxPositions: 8 });
  });
  afterAll(async () => model?.release());

  it("a prompt longer than the model's positions is a clear error", async () => {
    const error = await asyncErrorOf(() => new Generator(model).run([...PROMPT, 1, 2, 3]));
    expect(isRuntimeError(error) && error.code).toBe("prompt-too-long");
    expect((error as Error).message).toMatch(/9 tokens exceeds the model's 8 positions/);
  });

  it("truncate-left keeps the prompt's last tokens, leaving room for maxTokens", async () => {
    const long = [...PROMPT, 1, 2, 3];
    const truncated = await new Generator(model).run(long, { maxTokens: 2, eosTokenIds: [], promptOverflow: "truncate-left" });
    const direct = await new Generator(model).run(long.slice(-6), { maxTokens: 2, eosTokenIds: [] });
    expect(truncated.stats.promptTokens).toBe(6);
    expect(truncated.tokens).toEqual(direct.tokens);
  });

  it("generation stops when the context is full", async () => {
    const result = await new Generator(model).run(PROMPT, { maxTokens: 10, eosTokenIds: [] });
    expect(result.finishReason).toBe("context-full");
    expect(result.tokens).toHaveLength(8 - PROMPT.length + 1);
  });
});

describe.skipIf(!HAVE_SHARED)(`text generation ${HAVE_SHARED ? "" : NO_SHARED}`, () => {
  let model: DecoderModel;
  let gpt2: TextTokenizer;
  beforeAll(async () => {
    model = await DecoderModel.open(MODEL, { device: "cpu", threads: 1 });
    gpt2 = loadTokenizer(GPT2_TOKENIZER);
  });
  afterAll(async () => model?.release());

  it("a tokenizer whose vocabulary does not fit the model's logits is a clear error", async () => {
    const error = errorOf(() => new Generator(model, gpt2));
    expect(isRuntimeError(error) && error.code).toBe("tokenizer-mismatch");
    expect((error as Error).message).toBe("the tokenizer has 50295 token ids but the model's logits cover 384; use the tokenizer that belongs to this model");
    const fixture = await DecoderModel.open(SHARED_DECODERS.gpt2Fp32, { device: "cpu" });
    expect(() => new Generator(fixture, gpt2)).toThrow(/logits cover 1000/);
    await fixture.release();
  });

  it("streams text and stops before a stop string", async () => {
    // The GPT-2 tokenizer restricted to the model's 384 ids: real byte-level BPE decoding.
    const tokenizer: TextTokenizer = { ...gpt2, encode: (t) => gpt2.encode(t).filter((id) => id < 384), vocabSize: 384 };
    const generator = new Generator(model, tokenizer);
    const full = await generator.run(PROMPT, { maxTokens: 16, eosTokenIds: [] });
    expect(full.text).toBe(tokenizer.decode(full.tokens));
    const stop = full.text.slice(Math.floor(full.text.length / 2), Math.floor(full.text.length / 2) + 2);
    let streamed = "";
    let finishReason = "";
    for await (const event of generator.stream(PROMPT, { maxTokens: 16, eosTokenIds: [], stopStrings: [stop] })) {
      if (event.kind === "token") streamed += event.text;
      else {
        finishReason = event.finishReason;
        expect(event.text).toBe(streamed);
      }
    }
    expect(finishReason).toBe("stop-string");
    expect(streamed).toBe(full.text.slice(0, full.text.indexOf(stop)));
  });
});

describe("StreamingLLM with speculation past the model's positions", () => {
  const dir = tempDir("pipec-generate-streaming-speculate-");
  const streaming = { sinks: 4, window: 28 };
  let model: DecoderModel;
  beforeAll(async () => {
    // A 64-position zoo model with the per-query mask ahead of streaming-llm, as a .pipe with
    // kv: streaming and speculate: compiles it; positions stay within the cache (< 33).
    const graph = buildZooModel(llamaConfig({ layers: 2, maxPositions: 64 }), { encoding: "decomposed" });
    sparsify(graph, (m) => {
      createTreeAttentionMask().run(m, { options: {}, note: () => {} });
      return streamingLlm(m, streaming);
    });
    const path = join(dir, "model.onnx");
    saveModel(graph, path);
    model = await DecoderModel.open(path, { device: "cpu", threads: 1, maxPositions: 64 });
  });
  afterAll(async () => model?.release());

  it("on a model without a tree_attention_mask input is refused in one line before any call", async () => {
    const plain = await DecoderModel.open(MODEL, { device: "cpu", threads: 1 });
    try {
      const error = await asyncErrorOf(() => new Generator(plain).run(PROMPT, { maxTokens: 4, streaming, speculate: { kind: "lookup" } }));
      expect(isRuntimeError(error) && error.code).toBe("streaming-with-speculation");
      expect((error as Error).message).not.toContain("\n");
      expect((error as Error).message).toMatch(/needs a model with a tree_attention_mask input/);
    } finally {
      await plain.release();
    }
  });

  it("keeps drafting once the tokens outnumber the positions, with streaming's own tokens", async () => {
    const generator = new Generator(model);
    const prompt = [7, 101, 33, 250, 12, 90, 7, 101, 33];
    const run = (maxTokens: number, speculate?: SpeculateOptions) => generator.run(prompt, { maxTokens, eosTokenIds: [], streaming, speculate });
    const plain = await run(150);
    const long = await run(150, { kind: "lookup", draftLength: 4 });
    const short = await run(50, { kind: "lookup", draftLength: 4 });
    expect(plain.tokens).toHaveLength(150);
    expect(long.tokens).toEqual(plain.tokens);
    // Tokens 55..150 sit past the 64 positions: only the cache's positions bound the drafts.
    expect(long.stats.speculative!.acceptedTokens).toBeGreaterThan(short.stats.speculative!.acceptedTokens);
  });
});
