// The sparse-attention oracle's own check (test/helpers/attention-oracle.ts): with every layer's
// attention computed densely in TypeScript from the Q, K, V it names, the replayed step must give
// the unrewritten model's logits, and mapping query heads to the wrong KV heads must not.
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { AttentionOracle, dense, maxDiff, topK } from "./helpers/attention-oracle.ts";
import { AGREE, oracleCases } from "./helpers/oracle-models.ts";
import { modelBytes } from "./helpers/ort-parity.ts";


describe("the attention oracle replays the unrewritten model", () => {
  for (const c of oracleCases()) {
    it.skipIf(c.skip !== undefined)(`${c.name}${c.skip ? ` (skipped: ${c.skip})` : ""}`, async () => {
      const oracle = await AttentionOracle.create(c.load);
      const session = await ort.InferenceSession.create(modelBytes(await c.load()));
      try {
        expect(oracle.layers.map((l) => l.layer)).toEqual(Array.from({ length: c.layers }, (_, i) => i));
        const feeds = oracle.feeds(40, 5);
        const want = (await session.run(feeds)).logits!.data as Float32Array;
        const replayed = await oracle.run(feeds, dense);
        expect(maxDiff(replayed.logits, want)).toBeLessThanOrEqual(AGREE);
        // Query head h on KV head h mod Hkv (SGLang's layout) is another model wherever heads share KV heads.
        const permuted = await oracle.run(feeds, dense, (step, h) => h % step.kvHeads);
        if (oracle.layers.some((l) => l.heads > l.kvHeads)) expect(maxDiff(permuted.logits, want)).toBeGreaterThan(1e-3);
        else expect(maxDiff(permuted.logits, want)).toBeLessThanOrEqual(AGREE);
      } finally {
        await Promise.all([oracle.release(), session.release()]);
      }
    });
  }
});

describe("the oracle's top-k", () => {
  it("takes the largest, ties to the lower index, and measures the gap rounding would have to close", () => {
    expect(topK([0.1, 0.5, 0.3, 0.5, 0.2], 2)).toEqual({ indices: [1, 3], margin: 0.2 });
    // A tie across the boundary is broken by index; the margin is to the nearest different value.
    expect(topK([0.5, 0.1, 0.5, 0.5], 2).indices).toEqual([0, 2]);
    expect(topK([0.5, 0.1, 0.5, 0.5], 2).margin).toBeCloseTo(0.4, 12);
    expect(topK([0.4, 0.3], 2).margin).toBe(Infinity);
  });
});
