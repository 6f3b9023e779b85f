import { resolve } from "node:path";
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import type { Model } from "../../graph/ir/model.ts";
import { PROVENANCE_KEY } from "../../graph/ir/node.ts";
import { loadModel } from "../../graph/onnx/index.ts";
import { buildZooModel, llamaConfig } from "../../graph/zoo/index.ts";
import { HAVE_SHARED, SKIP_SHARED_REASON } from "../../test/helpers/fixtures.ts";
import { seededFeeds } from "../../test/helpers/ort-inputs.ts";
import { modelBytes } from "../../test/helpers/ort-parity.ts";
import { exactness, keepRows, maxOutputDiff, projectExactnessCases, runStep, sharedExactnessCases, sparsify } from "../../test/helpers/sparse-parity.ts";
import { defaultRegistry } from "../../compiler/methods/registry.ts";
import { APPEND_ONLY_CASES, spareRowsDiff, thenAppendOnly } from "../../test/helpers/append-only-parity.ts";
import { createTokenSelect, TOKEN_SELECT, tokenSelect, type TokenSelectOptions } from "./token-select.ts";

const EXACT = 1e-5;
/**
 * stories260K's logits reach ~13, where 1e-5 is ~10 float32 ulps: two-block attention (the
 * selected past rows, then the new rows, summed) orders the additions differently from one MatMul
 * over every key, which moves them by ~1.1e-5 (1e-6 relative).
 */
const EXACT_SHARED = 2e-5;
const covering = (m: Model) => tokenSelect(m, { topK: { tokens: 1 << 20 }, sinks: 4, window: 8, kernelSize: -1 });

describe("tokenselect with a budget covering the context is exact", () => {
  for (const c of projectExactnessCases()) {
    it(c.name, async () => {
      const r = await exactness(c, covering);
      expect(r.lifted).toBeGreaterThan(0);
      expect(r.rewritten).toBe(r.lifted);
      expect(r.diff).toBeLessThanOrEqual(EXACT);
    });
  }
});

describe.skipIf(!HAVE_SHARED)(`tokenselect on the shared fixtures (${HAVE_SHARED ? "present" : SKIP_SHARED_REASON})`, () => {
  for (const c of sharedExactnessCases()) {
    it(c.name, async () => {
      const r = await exactness(c, covering);
      expect(r.rewritten).toBe(r.lifted);
      expect(r.diff).toBeLessThanOrEqual(EXACT_SHARED);
    });
  }
});

// Gemma 2's first layer slides (window 16): its mask hides the OLDEST rows, so the rows end at
// the last visible one, not after as many rows as are visible (the decode step has 20 past rows).
describe("tokenselect on a sliding-window layer with a covering budget is exact", () => {
  for (const fixture of ["gemma2-sdpa-dynamo-opset20", "gemma2-eager-torchscript-opset17"]) {
    it(fixture, async () => {
      const path = resolve(import.meta.dirname, "../../test/fixtures/export-matrix", fixture, "model.onnx");
      const r = await exactness({ name: fixture, load: () => loadModel(path) }, covering);
      expect(r.rewritten).toBe(2);
      expect(r.diff).toBeLessThanOrEqual(EXACT);
    });
  }
});

describe("tokenselect keeps one index set per layer: sinks, the top-voted middle, the window", () => {
  const [sinks, window, selected, past] = [3, 4, 5, 30];
  // top_k counts every key attended: the sinks, the window (the new row included) and the selected.
  const options: TokenSelectOptions = { topK: { tokens: sinks + window + selected }, sinks, window, kernelSize: -1 };

  it("equals the dense model fed just the selected rows, and the selection is the top of the votes", async () => {
    const config = llamaConfig({ layers: 1 });
    const sparse = buildZooModel(config);
    expect(sparsify(sparse, (m) => tokenSelect(m, options)).rewritten).toBe(1);
    // Expose the layer's votes and its index set (the three-way Concat of sinks, chosen, window).
    const made = sparse.graph.nodeArray().filter((n) => n.metadata.get(PROVENANCE_KEY) === TOKEN_SELECT);
    const keep = made.filter((n) => n.op === "Concat" && n.inputs.length === 3).at(-1)!.output(0);
    const votes = made.find((n) => n.op === "ReduceSum")!.output(0);
    sparse.graph.addOutput(keep);
    sparse.graph.addOutput(votes);

    const sparseSession = await ort.InferenceSession.create(modelBytes(sparse));
    const denseSession = await ort.InferenceSession.create(modelBytes(buildZooModel(config)));
    const feeds = seededFeeds(sparseSession, 5, { batch_size: 1, past_sequence_length: past, sequence_length: 1, total_sequence_length: past + 1 });
    feeds.position_ids = new ort.Tensor("int64", BigInt64Array.from([BigInt(past)]), [1, 1]);
    const out = await sparseSession.run(feeds);
    const kept = Array.from(out[keep.name]!.data as BigInt64Array, Number);
    const voteValues = Array.from(out[votes.name]!.data as Float32Array);

    // Indices are past rows: the step's new row is the window's last row, attended anyway.
    const pastWindow = window - 1;
    const middle = Array.from({ length: past - sinks - pastWindow }, (_, i) => sinks + i);
    // One vote per middle key (key m's at m - sinks).
    expect(voteValues.length).toBe(middle.length);
    const vote = (m: number) => voteValues[m - sinks]!;
    const topVoted = [...middle].sort((a, b) => vote(b) - vote(a)).slice(0, selected).sort((a, b) => a - b);
    expect(kept).toEqual([0, 1, 2, ...topVoted, past - 3, past - 2, past - 1]);
    // Per-head softmax over the middle, summed over heads: the votes add up to the head count.
    expect(middle.reduce((s, m) => s + vote(m), 0)).toBeCloseTo(config.heads, 4);

    const pastRows = kept;
    const keptFeeds: Record<string, ort.Tensor> = { ...feeds, attention_mask: new ort.Tensor("int64", new BigInt64Array(pastRows.length + 1).fill(1n), [1, pastRows.length + 1]) };
    for (const [name, t] of Object.entries(feeds)) if (name.startsWith("past_key_values.")) keptFeeds[name] = keepRows(t, pastRows);
    const got = out.logits!.data as Float32Array;
    const want = (await denseSession.run(keptFeeds)).logits!.data as Float32Array;
    expect(Math.max(...got.map((g, i) => Math.abs(g - want[i]!)))).toBeLessThanOrEqual(EXACT);
    await Promise.all([sparseSession.release(), denseSession.release()]);
  });

  it("changes decode steps only, with or without pooling the votes", async () => {
    const config = llamaConfig({ layers: 2 });
    const dense = buildZooModel(config);
    for (const kernelSize of [-1, 3]) {
      const sparse = buildZooModel(config);
      sparsify(sparse, (m) => tokenSelect(m, { ...options, kernelSize }));
      expect(maxOutputDiff(await runStep(dense, { past: 0, seq: 24 }), await runStep(sparse, { past: 0, seq: 24 }))).toBeLessThanOrEqual(EXACT);
      expect(maxOutputDiff(await runStep(dense, { past: past, seq: 1 }), await runStep(sparse, { past: past, seq: 1 }))).toBeGreaterThan(1e-3);
    }
  });

  it("refuses an even pooling width; describes itself with and without the selection cache", () => {
    expect(() => createTokenSelect({ kernelSize: 4 })).toThrow(/kernel_size must be -1 \(no pooling\) or an odd width, got 4/);
    const [{ pass }] = defaultRegistry().resolve([{ name: TOKEN_SELECT, options: {} }]);
    expect(pass.lossy).toBe(true);
    expect(pass.description).toBe("TokenSelect: 2688 keys a step (auto sinks, auto recent, the rest by per-head soft voting) (lossy)");
    const [{ pass: cached }] = defaultRegistry().resolve([{ name: TOKEN_SELECT, options: { selection_cache: "true", cache_threshold: "0.8" } }]);
    expect(cached.description).toBe("TokenSelect: 2688 keys a step (auto sinks, auto recent, the rest by per-head soft voting), selection cache at cosine 0.8 (lossy)");
  });
});

describe("tokenselect composed with kv-append-only (no cache Concat left) with a covering budget is exact", () => {
  for (const c of projectExactnessCases().filter((c) => APPEND_ONLY_CASES.test(c.name))) {
    it(c.name, async () => {
      const r = await exactness(c, thenAppendOnly(covering));
      expect(r.rewritten).toBe(r.lifted);
      expect(r.diff).toBeLessThanOrEqual(EXACT);
    });
  }
});

describe("tokenselect on an append-only buffer", () => {
  it("ignores the buffer's masked spare rows: the window ends at the last cached row (small budget)", async () => {
    const model = buildZooModel(llamaConfig({ layers: 2 }));
    sparsify(model, thenAppendOnly((m) => tokenSelect(m, { topK: { percent: 12.5 }, sinks: 2, window: 4, kernelSize: -1 })));
    expect(await spareRowsDiff(model, 40, 24)).toBeLessThanOrEqual(EXACT);
  });
});
