import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { main } from "../compiler/cli/main.ts";
import { loadModel, saveModel } from "../compiler/onnx/index.ts";
import { buildZooModel, llamaConfig } from "../compiler/zoo/index.ts";
import { DecoderModel } from "../runtime/decoder.ts";
import { Generator } from "../runtime/generate.ts";
import { streamingKeep } from "../runtime/cache/streaming.ts";
import { HAVE_SHARED, SKIP_SHARED_REASON } from "../test/helpers/fixtures.ts";
import { modelBytes } from "../test/helpers/ort-parity.ts";
import { seededFeeds } from "../test/helpers/ort-inputs.ts";
import { exactness, keepRows, projectExactnessCases, sharedExactnessCases, sparsify } from "../test/helpers/sparse-parity.ts";
import { tempDir } from "../test/helpers/tmp.ts";
import { streamingLlm } from "./streaming-llm.ts";

const EXACT = 1e-5;
const covering = (m: Parameters<typeof streamingLlm>[0]) => streamingLlm(m, { sinks: 4, window: 1 << 20 });

describe("streaming-llm with a window covering the context is exact", () => {
  for (const c of projectExactnessCases()) {
    it(c.name, async () => {
      const r = await exactness(c, covering);
      expect(r.lifted).toBeGreaterThan(0);
      expect(r.rewritten).toBe(r.lifted);
      expect(r.diff).toBeLessThanOrEqual(EXACT);
    });
  }
});

describe.skipIf(!HAVE_SHARED)(`streaming-llm on the shared fixtures (${HAVE_SHARED ? "present" : SKIP_SHARED_REASON})`, () => {
  for (const c of sharedExactnessCases()) {
    it(c.name, async () => {
      const r = await exactness(c, covering);
      expect(r.rewritten).toBe(r.lifted);
      expect(r.diff).toBeLessThanOrEqual(EXACT);
    });
  }
});

describe("streaming-llm attends to the sinks and the window only", () => {
  it("a decode step equals the dense model fed just the kept rows, at the same position", async () => {
    const config = llamaConfig({ layers: 2 });
    const [sinks, window, past] = [3, 8, 30];
    const sparse = buildZooModel(config);
    expect(sparsify(sparse, (m) => streamingLlm(m, { sinks, window })).rewritten).toBe(2);

    const denseSession = await ort.InferenceSession.create(modelBytes(buildZooModel(config)));
    const sparseSession = await ort.InferenceSession.create(modelBytes(sparse));
    const feeds = seededFeeds(sparseSession, 3, { batch_size: 1, past_sequence_length: past, sequence_length: 1, total_sequence_length: past + 1 });
    feeds.position_ids = new ort.Tensor("int64", BigInt64Array.from([BigInt(past)]), [1, 1]);
    // The window holds the new token, so window - 1 past rows.
    const kept = [...Array.from({ length: sinks }, (_, i) => i), ...Array.from({ length: window - 1 }, (_, i) => past - window + 1 + i)];
    const keptFeeds: Record<string, ort.Tensor> = { ...feeds, attention_mask: new ort.Tensor("int64", new BigInt64Array(kept.length + 1).fill(1n), [1, kept.length + 1]) };
    for (const [name, t] of Object.entries(feeds)) if (name.startsWith("past_key_values.")) keptFeeds[name] = keepRows(t, kept);

    const got = (await sparseSession.run(feeds)).logits!.data as Float32Array;
    const want = (await denseSession.run(keptFeeds)).logits!.data as Float32Array;
    expect(Math.max(...got.map((g, i) => Math.abs(g - want[i]!)))).toBeLessThanOrEqual(EXACT);
    const full = (await denseSession.run(feeds)).logits!.data as Float32Array;
    expect(Math.max(...got.map((g, i) => Math.abs(g - full[i]!)))).toBeGreaterThan(1e-3);
    await Promise.all([denseSession.release(), sparseSession.release()]);
  });

  it("keeps sinks then the most recent rows", () => {
    expect(streamingKeep(6, { sinks: 2, window: 4 })).toBeUndefined();
    expect(streamingKeep(9, { sinks: 2, window: 4 })).toEqual([0, 1, 5, 6, 7, 8]);
  });
});

describe("streaming-llm generation with runtime eviction", () => {
  const dir = tempDir("pipec-streaming-");

  it("holds the KV bytes flat past the window and generates what the rewritten model does without evicting", async () => {
    const model = await loadModel(join(import.meta.dirname, "../test/fixtures/reference/llama-torchscript/model.onnx"));
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
    const example = join(import.meta.dirname, "../examples/sparse-streaming.pipe");
    const code = await main(["run", example, "--ids", "1,5,9,23", "--json", "--device", "cpu", "--cache-dir", cache], { out: (t) => void (stdout += t), err: (t) => void (stderr += t) });
    expect(code, stderr).toBe(0);
    const result = JSON.parse(stdout) as { tokens: number[]; stats: { peakKvBytes: number } };
    expect(result.tokens).toHaveLength(96);
    // llama reference export: 2 layers x (K, V) x 2 KV heads x 16 lanes x 4 bytes per row; 4 sinks + 60 window + 1 new.
    expect(result.stats.peakKvBytes).toBe((4 + 60 + 1) * 2 * 2 * 2 * 16 * 4);
  });
});
