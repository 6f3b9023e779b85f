// The append-only cache contract: a model that outputs only its new K/V rows
// (present_new.{i}.key|value) while the runtime owns a growing buffer. The model here is
// the llama reference export rewritten by the kv-append-only pass (present outputs
// re-pointed at the Concat's new-rows input); the runtime must decode it exactly like
// the original, roll it back, and copy nothing proportional to the context per step.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadModel, saveModel } from "../graph/onnx/index.ts";
import { createKvAppendOnly } from "../passes/kv/kv-append-only.ts";
import { DecoderModel } from "../runtime/decoder.ts";
import { Generator } from "../runtime/generate.ts";
import { REFERENCE_DIR } from "./helpers/runtime-models.ts";
import { floatData } from "../runtime/tensors.ts";
import { tempDir } from "./helpers/tmp.ts";

const SOURCE = join(REFERENCE_DIR, "llama-dynamo/model.onnx");

/** The reference export rewritten by the kv-append-only pass; returns how many outputs it re-pointed. */
function writeAppendOnlyModel(target: string): number {
  const model = loadModel(SOURCE);
  const { stats } = createKvAppendOnly().run(model, { options: {}, note: () => {} });
  saveModel(model, target);
  return stats!["kv-outputs-rewritten"]!;
}

describe("append-only KV contract (present_new.*)", () => {
  const dir = tempDir("pipec-append-");
  const appendPath = join(dir, "model.onnx");
  const prompt = [7, 101, 33, 250, 12];

  it("decodes exactly like the original model, through buffer growth", async () => {
    expect(writeAppendOnlyModel(appendPath)).toBe(4); // 2 layers x (key, value)
    const original = await DecoderModel.open(SOURCE, { device: "cpu", threads: 1 });
    const appendOnly = await DecoderModel.open(appendPath, { device: "cpu", threads: 1, kvCache: { initialCapacity: 4 } });
    try {
      expect(appendOnly.contract.kvMode).toBe("append");
      const expected = await new Generator(original).run(prompt, { maxTokens: 20, eosTokenIds: [] });
      const actual = await new Generator(appendOnly).run(prompt, { maxTokens: 20, eosTokenIds: [] });
      expect(actual.tokens).toEqual(expected.tokens);
      // The generator reserves prompt + max tokens = 25 rows up front: 2 layers x 2 (K,V) x 2 heads x 25 rows x 16 x 4 bytes.
      expect(actual.stats.peakKvBytes).toBe(2 * 2 * 2 * 25 * 16 * 4);

      // Without a reservation the buffer doubles 4 -> 8 -> 16 -> 32 over the same 24 rows, and decodes the same.
      const growing = appendOnly.newSequence();
      let logits = await growing.forward(prompt);
      for (const token of expected.tokens.slice(0, -1)) logits = await growing.forward([token]);
      expect(growing.cache.peakBytes).toBe(2 * 2 * 2 * 32 * 16 * 4);
      const last = floatData(logits);
      expect(last.indexOf(Math.max(...last))).toBe(expected.tokens.at(-1));
    } finally {
      await original.release();
      await appendOnly.release();
    }
  });

  it("rolls back by moving the length only, and matches a fresh run", async () => {
    const appendOnly = await DecoderModel.open(appendPath, { device: "cpu", threads: 1, kvCache: { initialCapacity: 16 } });
    try {
      const rolled = appendOnly.newSequence();
      await rolled.forward([...prompt, 40, 41, 42]);
      const bytes = rolled.cache.bytes;
      rolled.truncate(prompt.length);
      expect(rolled.cache.bytes).toBe(bytes);
      const afterRollback = floatData(await rolled.forward([99])).slice();

      const fresh = appendOnly.newSequence();
      await fresh.forward(prompt);
      const direct = floatData(await fresh.forward([99]));
      let worst = 0;
      direct.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - afterRollback[i]))));
      expect(worst).toBeLessThan(1e-4);
    } finally {
      await appendOnly.release();
    }
  });

  it("with outputs bound to preallocated tensors, decodes the same and the cache stays put between steps", async () => {
    const bound = await DecoderModel.open(appendPath, { device: "cpu", threads: 1, kvCache: { initialCapacity: 64 }, bindOutputs: true });
    const unbound = await DecoderModel.open(appendPath, { device: "cpu", threads: 1, kvCache: { initialCapacity: 64 } });
    try {
      const expected = await new Generator(unbound).run(prompt, { maxTokens: 12, eosTokenIds: [] });
      expect((await new Generator(bound).run(prompt, { maxTokens: 12, eosTokenIds: [] })).tokens).toEqual(expected.tokens);
      const seq = bound.newSequence();
      await seq.forward(prompt);
      const bytes = seq.cache.bytes;
      await seq.forward([1]);
      await seq.forward([2]);
      expect(seq.cache.bytes).toBe(bytes);
      expect(seq.length).toBe(prompt.length + 2);
    } finally {
      await bound.release();
      await unbound.release();
    }
  });
});
