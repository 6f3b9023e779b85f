import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { isPipecError } from "../../graph/errors.ts";
import type { Model } from "../../graph/ir/index.ts";
import { buildZooModel, llamaConfig } from "../../graph/zoo/index.ts";
import { modelToBytes } from "../../test/helpers/zoo-decode.ts";
import { createLogitsTopk } from "./logits-topk.ts";

const PROMPT = [1, 17, 42, 99, 5, 5, 31];

function run(model: Model, options: Record<string, unknown> = {}) {
  return createLogitsTopk().run(model, { options, note: () => {} });
}

async function outputs(model: Model): Promise<Record<string, ort.Tensor>> {
  const session = await ort.InferenceSession.create(modelToBytes(model));
  try {
    const ids = (v: number[]) => new ort.Tensor("int64", BigInt64Array.from(v, BigInt), [1, v.length]);
    const feeds: Record<string, ort.Tensor> = { input_ids: ids(PROMPT), attention_mask: ids(PROMPT.map(() => 1)), position_ids: ids(PROMPT.map((_, i) => i)) };
    for (const meta of session.inputMetadata) {
      if (meta.isTensor && meta.name.startsWith("past_")) feeds[meta.name] = new ort.Tensor("float32", new Float32Array(0), meta.shape.map((d) => (typeof d === "number" ? d : d === "batch_size" ? 1 : 0)));
    }
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

/** Ids of row `r` sorted by descending logit, ties by ascending id. */
function ranked(logits: Float32Array, V: number, r: number): number[] {
  const row = logits.subarray(r * V, (r + 1) * V);
  return Array.from({ length: V }, (_, i) => i).sort((a, b) => row[b] - row[a] || a - b);
}

describe("logits-topk", () => {
  it("adds top-k values/indices [B, S, k] and argmax [B, S] equal to the host's ranking of the logits", async () => {
    const model = buildZooModel(llamaConfig({ layers: 2 }));
    expect(run(model, { k: 8 })).toEqual({ changed: true, stats: { "outputs-added": 3 } });
    const out = await outputs(model);
    const logits = out.logits.data as Float32Array;
    const V = out.logits.dims[2];
    const S = PROMPT.length;
    expect(out.logits_topk_values.dims).toEqual([1, S, 8]);
    expect(out.logits_topk_indices.dims).toEqual([1, S, 8]);
    expect(out.logits_argmax.dims).toEqual([1, S]);
    const indices = Array.from(out.logits_topk_indices.data as BigInt64Array, Number);
    const values = out.logits_topk_values.data as Float32Array;
    const argmax = Array.from(out.logits_argmax.data as BigInt64Array, Number);
    for (let r = 0; r < S; r++) {
      const host = ranked(logits, V, r);
      expect(indices.slice(r * 8, r * 8 + 8)).toEqual(host.slice(0, 8));
      expect(Array.from(values.subarray(r * 8, r * 8 + 8))).toEqual(host.slice(0, 8).map((id) => logits[r * V + id]));
      expect(argmax[r]).toBe(host[0]);
    }
    expect(run(model, { k: 8 }).changed).toBe(false);
  });

  it("k = 0 adds only the argmax; argmax = false only the top-k", () => {
    const onlyArgmax = buildZooModel(llamaConfig());
    expect(run(onlyArgmax, { k: 0 }).stats).toEqual({ "outputs-added": 1 });
    expect(onlyArgmax.graph.outputs.map((v) => v.name)).toContain("logits_argmax");
    const onlyTopk = buildZooModel(llamaConfig());
    expect(run(onlyTopk, { k: 4, argmax: false }).stats).toEqual({ "outputs-added": 2 });
    expect(onlyTopk.graph.outputs.map((v) => v.name)).not.toContain("logits_argmax");
  });

  it("min_vocab: adds nothing below it (with a note), as usual from it on", () => {
    const notes: string[] = [];
    const small = buildZooModel(llamaConfig({ vocabSize: 256 }));
    expect(createLogitsTopk().run(small, { options: { k: 8, min_vocab: 1024 }, note: (n) => notes.push(n) })).toEqual({ changed: false, stats: { "outputs-added": 0, "small-vocabulary": 1 } });
    expect(small.graph.outputs.map((v) => v.name).filter((n) => n.startsWith("logits_"))).toEqual([]);
    expect(notes).toEqual([expect.stringContaining("the logits cover 256 ids, fewer than min_vocab 1024")]);
    const large = buildZooModel(llamaConfig({ vocabSize: 1024 }));
    expect(run(large, { k: 8, min_vocab: 1024 }).stats).toEqual({ "outputs-added": 3 });
  });

  it("refuses a bad k with one PipecError line", () => {
    let error: unknown;
    try {
      run(buildZooModel(llamaConfig()), { k: -2 });
    } catch (e) {
      error = e;
    }
    expect(isPipecError(error)).toBe(true);
    expect((error as Error).message).toBe("logits-topk: k must be a non-negative integer, got -2");
  });
});
