import { join } from "node:path";
import type * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { main } from "../../compiler/cli/main.ts";
import { entryFor } from "../../compiler/pipeline/cache-dir.ts";
import { Builder } from "../../graph/ir/builder.ts";
import { loadModel, saveModel } from "../../graph/onnx/index.ts";
import { buildZooModel, ENCODINGS, gpt2Config, llamaConfig, type ZooConfig } from "../../graph/zoo/index.ts";
import { DecoderModel } from "../../runtime/decoder.ts";
import { Generator } from "../../runtime/generate.ts";
import { evictStreaming, streamingKeep, streamingRows } from "../../runtime/kv-policies/streaming.ts";
import { HAVE_SHARED, SKIP_SHARED_REASON } from "../../test/helpers/fixtures.ts";
import { projectExactnessCases, sharedExactnessCases, sparsify, type ExactnessCase } from "../../test/helpers/sparse-parity.ts";
import { tempDir } from "../../test/helpers/tmp.ts";
import { isCanonical } from "../attention/canonical-node.ts";
import { liftAttention } from "../attention/lift.ts";
import { createStreamingLlm, streamingLlm, streamingLlmLayers } from "./streaming-llm.ts";
import { APPEND_ONLY_CASES, thenAppendOnly } from "../../test/helpers/append-only-parity.ts";
import type { Model } from "../../graph/ir/model.ts";
import { createTreeAttentionMask } from "../speculative/tree-attention-mask.ts";
import { chainedExactness } from "../../test/helpers/chained-parity.ts";
import { Rerotation } from "./streaming-llm/rotation.ts";

/**
 * Exact up to float32 rounding, relative to the logits' size: a fused re-rotation
 * (streaming-llm/fused-rotary.ts) rounds differently from the dense model's spelled one, by about
 * 1e-6 of the largest logit (measured: stories260K 1.3e-5 at 12.9, the llama and qwen2
 * reference exports 6e-6 at 7.6); a wrong rotation differs by the logits' own size.
 */
const EXACT = 1e-5;
const exactFor = (r: { scale: number }) => EXACT * Math.max(1, r.scale);
const covering = (m: Parameters<typeof streamingLlm>[0]) => streamingLlm(m, { sinks: 4, window: 1 << 20 });

// The cache holds keys before rotation, so each model runs its own prefill and decode steps
// (a seeded past would mean different things to the two) and the logits are compared.
describe("streaming-llm with a window covering the context is exact", () => {
  for (const c of [...projectExactnessCases(), ...interleavedCases()]) {
    it(c.name, async () => {
      const r = await chainedExactness(c, covering);
      expect(r.lifted).toBeGreaterThan(0);
      expect(r.rewritten).toBe(r.lifted);
      expect(r.diff).toBeLessThanOrEqual(exactFor(r));
    });
  }
});

// Option kv_append_only, through the pass (as kv.streaming compiles it): where kv-append-only
// applies, present_new.* carry the new rows' keys before rotation, the past buffer is re-rotated at
// its rows and no layer concatenates the cache (thenAppendOnly checks); where it refuses (the zoo's
// "ms" llama grows its cache inside GroupQueryAttention; the shared decoders lack position_ids, read
// no attention_mask or stack K and V in present_{i}) the model keeps its present outputs, and the
// attention over past and new rows apart must be exact there too.
describe("streaming-llm with kv_append_only and a window covering the context is exact", () => {
  const appendOnly = (c: ExactnessCase) => !/^zoo llama .*ms$/.test(c.name) && !/^shared (?!stories260K)/.test(c.name);
  // (lfm2's attention is not one lift-attention recognises: nothing to rewrite there.)
  for (const c of [...projectExactnessCases(), ...interleavedCases(), ...sharedExactnessCases().filter((c) => !c.name.includes("lfm2"))]) {
    it(`${c.name} (${appendOnly(c) ? "append-only" : "present outputs"})`, async () => {
      let outputs: string[] = [];
      const pass = createStreamingLlm({ sinks: 4, window: 1 << 20, appendOnly: true });
      const rewrite = (m: Model) => {
        const layers = pass.run(m, { options: {}, note: () => {} }).stats!["layers"]!;
        outputs = m.graph.outputs.map((o) => o.name);
        return layers;
      };
      const r = await chainedExactness(c, appendOnly(c) ? thenAppendOnly(rewrite) : rewrite);
      expect(r.lifted).toBeGreaterThan(0);
      expect(r.rewritten).toBe(r.lifted);
      expect(outputs.some((name) => name.startsWith("present_new."))).toBe(appendOnly(c));
      expect(r.diff).toBeLessThanOrEqual(exactFor(r));
    });
  }
});

describe.skipIf(!HAVE_SHARED)(`streaming-llm on the shared fixtures (${HAVE_SHARED ? "present" : SKIP_SHARED_REASON})`, () => {
  for (const c of sharedExactnessCases()) {
    it(c.name, async () => {
      const r = await chainedExactness(c, covering);
      expect(r.rewritten).toBe(r.lifted);
      expect(r.diff).toBeLessThanOrEqual(exactFor(r));
    });
  }
});

describe("streaming-llm places positions within the cache", () => {
  it("re-rotates every rotary encoding's keys and queries, and none of GPT-2's learned positions", async () => {
    const rotated = (config: ZooConfig, encoding: (typeof ENCODINGS)[number]) => {
      const model = buildZooModel(config, { encoding });
      let count = 0;
      sparsify(model, (m) => ({ rotated: count } = streamingLlmLayers(m, { sinks: 4, window: 8 })).layers);
      return count;
    };
    for (const encoding of ENCODINGS) {
      expect(rotated(llamaConfig({ layers: 3 }), encoding), encoding).toBe(3);
      expect(rotated(gpt2Config({ layers: 3 }), encoding), encoding).toBe(0);
    }
  });

  it("keeps sinks then the most recent rows", () => {
    expect(streamingKeep(6, { sinks: 2, window: 4 })).toBeUndefined();
    expect(streamingKeep(9, { sinks: 2, window: 4 })).toEqual([0, 1, 5, 6, 7, 8]);
  });

  it("bounds the rows a run holds (what an append cache reserves) by the prompt or sinks + window + 1", () => {
    const config = { sinks: 2, window: 4 };
    expect(streamingRows(3, 3, 100, config)).toBe(7);
    expect(streamingRows(3, 3, 2, config)).toBe(5);
    expect(streamingRows(20, 20, 100, config)).toBe(20);
    expect(streamingRows(20, 5, 100, config)).toBe(11);
  });
});

describe("streaming-llm generates past the model's positions", () => {
  const dir = tempDir("pipec-streaming-positions-");
  const [sinks, window, maxPositions, steps] = [4, 28, 64, 150];
  const streaming = { sinks, window };

  async function open(config: ZooConfig, rewrite: boolean, name: string, encoding: (typeof ENCODINGS)[number] = "decomposed", appendOnly = false): Promise<DecoderModel> {
    const model = buildZooModel(config, { encoding });
    const pass = createStreamingLlm({ ...streaming, appendOnly });
    if (rewrite) sparsify(model, (m) => pass.run(m, { options: {}, note: () => {} }).stats!["layers"]!);
    const path = join(dir, `${name}.onnx`);
    saveModel(model, path);
    return DecoderModel.open(path, { device: "cpu", threads: 1, maxPositions });
  }

  // One layer: a kept token's key and value depend on its embedding and position only, so a
  // fresh dense run on exactly the kept tokens at 0..N-1 is the paper's step, computed apart.
  // Append-only: the runtime's append cache evicts by gathering the kept rows into the front of its buffer
  // (the zoo's "ms" encoding grows its cache inside GroupQueryAttention, which kv-append-only refuses).
  const forms = [...ENCODINGS.map((encoding) => ({ encoding, appendOnly: false })), ...ENCODINGS.filter((e) => APPEND_ONLY_CASES.test(`zoo llama ${e}`)).map((encoding) => ({ encoding, appendOnly: true }))];
  for (const { encoding, appendOnly } of forms) it(`${encoding}${appendOnly ? " append-only" : ""}: each step after eviction equals the dense model run fresh on the kept tokens at positions 0..N-1`, async () => {
    const config = llamaConfig({ layers: 1, maxPositions });
    const sparse = await open(config, true, `llama-streaming-${encoding}-${appendOnly}`, encoding, appendOnly);
    const dense = await open(config, false, `llama-dense-${encoding}-${appendOnly}`, encoding);
    expect(sparse.contract.kvMode).toBe(appendOnly ? "append" : "present");
    const sequence = sparse.newSequence();
    let cached = [7, 101, 33, 250, 12, 90];
    let logits = await sequence.forward(cached);
    const checked: number[] = [];
    const bytes: number[] = [];
    for (let step = 0; step < steps; step++) {
      const token = argmaxLast(logits);
      // The rows the step attends to: the sinks and the window's last rows, the new token last.
      const attended = [...cached, token].filter((_, i, all) => i < sinks || i >= all.length - window);
      logits = await sequence.forward([token]);
      cached = [...cached, token];
      const keep = streamingKeep(cached.length, streaming);
      if (evictStreaming(sequence, streaming)) cached = keep!.map((i) => cached[i]!);
      expect(sequence.length).toBe(cached.length);
      bytes.push(sequence.cache.bytes);
      if (step % 37 !== 36 && step !== steps - 1) continue;
      expect(attended.length).toBe(sinks + window);
      const fresh = dense.newSequence();
      const want = lastRow(await fresh.forward(attended));
      const got = lastRow(logits);
      expect(Math.max(...got.map((g, i) => Math.abs(g - want[i]!)))).toBeLessThanOrEqual(1e-4);
      checked.push(step);
    }
    await Promise.all([sparse.release(), dense.release()]);
    expect(checked).toEqual([36, 73, 110, 147, 149]);
    expect(new Set(bytes.slice(window)).size).toBe(1);
  });

  for (const config of [llamaConfig({ layers: 2, maxPositions }), gpt2Config({ layers: 2, maxPositions })]) {
    it(`${config.family}: ${steps} tokens from a ${maxPositions}-position model with the KV bytes flat`, async () => {
      const decoder = await open(config, true, `${config.family}-generate`);
      const generator = new Generator(decoder);
      const long = await generator.run([7, 101, 33], { maxTokens: steps, eosTokenIds: [], streaming });
      const short = await generator.run([7, 101, 33], { maxTokens: 2 * window, eosTokenIds: [], streaming });
      await decoder.release();
      expect(long.tokens).toHaveLength(steps);
      expect(long.finishReason).toBe("max-tokens");
      expect(long.stats.peakKvBytes).toBe(short.stats.peakKvBytes);
    });

    // The append-only form against the present-cache one (itself checked against the paper's step above):
    // the same logits at every step, through every eviction, and the append buffer at sinks + window + 1 rows.
    it(`${config.family}: the append-only form computes the present-cache form's logits through every eviction`, async () => {
      const present = await open(config, true, `${config.family}-generate-present`);
      const append = await open(config, true, `${config.family}-generate-append`, "decomposed", true);
      expect(append.contract.kvMode).toBe("append");
      const [want, got] = [present.newSequence(), append.newSequence()];
      got.reserve(sinks + window + 1);
      let token = 7;
      let worst = 0;
      for (let step = 0; step < steps; step++) {
        const [a, b] = [lastRow(await want.forward([token])), lastRow(await got.forward([token]))];
        worst = Math.max(worst, ...a.map((x, i) => Math.abs(x - b[i]!)));
        token = a.indexOf(Math.max(...a));
        evictStreaming(want, streaming);
        evictStreaming(got, streaming);
        expect(got.length).toBe(want.length);
      }
      expect(got.cache.peakBytes).toBe(want.cache.peakBytes);
      await Promise.all([present.release(), append.release()]);
      expect(worst).toBeLessThanOrEqual(1e-4);
    });
  }
});

describe("streaming-llm generation with runtime eviction", () => {
  const dir = tempDir("pipec-streaming-");

  it("holds the KV bytes flat past the window and generates what the rewritten model does without evicting", async () => {
    const model = await loadModel(join(import.meta.dirname, "../../test/fixtures/reference/llama-torchscript/model.onnx"));
    const streaming = { sinks: 4, window: 12 };
    sparsify(model, (m) => streamingLlm(m, streaming));
    const path = join(dir, "model.onnx");
    saveModel(model, path);
    const decoder = await DecoderModel.open(path, { device: "cpu", threads: 1 });
    const generator = new Generator(decoder);
    const prompt = [7, 101, 33, 250, 12, 90];
    const kept = await generator.run(prompt, { maxTokens: 60, eosTokenIds: [], streaming });
    const shorter = await generator.run(prompt, { maxTokens: 30, eosTokenIds: [], streaming });
    const unevicted = await generator.run(prompt, { maxTokens: 60, eosTokenIds: [] });
    await decoder.release();

    expect(kept.tokens).toEqual(unevicted.tokens);
    expect(kept.stats.peakKvBytes).toBe(shorter.stats.peakKvBytes);
    expect(unevicted.stats.peakKvBytes).toBeGreaterThan(3 * kept.stats.peakKvBytes);
  });
});

describe("examples/sparse-streaming.pipe", () => {
  const cache = tempDir("pipec-streaming-example-");

  it("compiles and runs end to end with the cache held at sinks + window (+ the step's new row)", async () => {
    let stdout = "";
    let stderr = "";
    const example = join(import.meta.dirname, "../../examples/sparse-streaming.pipe");
    const code = await main(["run", example, "--ids", "1,5,9,23", "--json", "--device", "cpu", "--cache-dir", cache], { out: (t) => void (stdout += t), err: (t) => void (stderr += t) });
    expect(code, stderr).toBe(0);
    const result = JSON.parse(stdout) as { tokens: number[]; stats: { peakKvBytes: number } };
    expect(result.tokens).toHaveLength(96);
    // llama reference export: 2 layers x (K, V) x 2 KV heads x 16 lanes x 4 bytes per row; 4 sinks + 60 window + 1 new.
    expect(result.stats.peakKvBytes).toBe((4 + 60 + 1) * 2 * 2 * 2 * 16 * 4);
    // kv.streaming compiles to the append-only contract: the model outputs the new rows only.
    const compiled = await loadModel(join(entryFor(cache, example), "models/llm/model.onnx"));
    expect(compiled.graph.outputs.map((o) => o.name).filter((n) => n.startsWith("present"))).toEqual(["present_new.0.key", "present_new.0.value", "present_new.1.key", "present_new.1.value"]);
  });
});

/** Interleaved rotary lanes (pairs 2i, 2i+1) in every encoding. */
function interleavedCases(): ExactnessCase[] {
  return ENCODINGS.map((encoding) => ({ name: `zoo llama interleaved ${encoding}`, load: () => buildZooModel(llamaConfig({ layers: 2, rotary: "interleaved" }), { encoding }) }));
}

/** The last row of logits [1, S, V]. */
function lastRow(logits: ort.Tensor): Float32Array {
  const V = logits.dims[2]!;
  const data = logits.data as Float32Array;
  return data.slice(data.length - V);
}

function argmaxLast(logits: ort.Tensor): number {
  const row = lastRow(logits);
  return row.indexOf(Math.max(...row));
}

describe("streaming-llm with kv_append_only and speculation's tree mask", () => {
  it("keeps the present outputs (the runtime refuses a tree mask over an append buffer) and says so in a note", () => {
    const model = buildZooModel(llamaConfig({ layers: 2 }));
    liftAttention(model);
    createTreeAttentionMask().run(model, { options: {}, note: () => {} });
    const notes: string[] = [];
    const result = createStreamingLlm({ sinks: 4, window: 8, appendOnly: true }).run(model, { options: {}, note: (n) => notes.push(n) });
    expect(result.stats).toMatchObject({ layers: 2, rotated: 2, "kv-append-only": 0 });
    expect(notes).toEqual([expect.stringMatching(/^kv_append_only: not applied, a tree_attention_mask/)]);
    expect(model.graph.outputs.map((o) => o.name).filter((n) => n.startsWith("present"))).toEqual(["present.0.key", "present.0.value", "present.1.key", "present.1.value"]);
  });
});

describe("streaming-llm refuses what it cannot re-position", () => {
  it("keys rotated but queries not: one line naming the layer", () => {
    const model = buildZooModel(llamaConfig({ layers: 1 }));
    liftAttention(model);
    const node = model.graph.nodeArray().find(isCanonical)!;
    const flow = new Rerotation(model.graph);
    node.setInput(0, flow.rotationOf(new Builder(model.graph, { before: node }), node.inputs[0]!, "queries")!.unrotated);
    expect(() => streamingLlm(model, { sinks: 4, window: 8 })).toThrow(/^layer 0: only the keys carry a rotary embedding; cannot place them at in-cache positions$/);
  });

  it("learned positions with a tree mask (speculation): one line, since verified drafts would be cached at other positions than one-token steps use", () => {
    const model = buildZooModel(gpt2Config({ layers: 1 }));
    liftAttention(model);
    createTreeAttentionMask().run(model, { options: {}, note: () => {} });
    expect(() => streamingLlm(model, { sinks: 4, window: 8 })).toThrow(/^layer 0: StreamingLLM with speculative verification needs rotary positions;[^\n]*$/);
    const plain = buildZooModel(gpt2Config({ layers: 1 }));
    liftAttention(plain);
    expect(streamingLlm(plain, { sinks: 4, window: 8 })).toBe(1);
  });
});
