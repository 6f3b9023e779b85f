import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { Builder } from "../../graph/ir/builder.ts";
import { DataType } from "../../graph/ir/dtype.ts";
import { Model } from "../../graph/ir/model.ts";
import { tensorType } from "../../graph/ir/types.ts";
import type { Value } from "../../graph/ir/value.ts";
import { modelBytes } from "../../test/helpers/ort-parity.ts";
import { seededFeeds } from "../../test/helpers/ort-inputs.ts";
import { isCanonical, readCanonical } from "./canonical-node.ts";
import { findAttentionBlocks } from "./index.ts";
import { liftAttention } from "./lift.ts";
import { lowerAttention } from "./lower.ts";

// B=1, H=4 query heads, T=3 queries, N=5 keys, D=8.
const [H, T, N, D] = [4, 3, 5, 8];

interface Spelling {
  kvHeads: number;
  /** Builds the attention output [1, H, T, D] from the graph inputs. */
  attend(b: Builder, x: { query: Value; key: Value; value: Value; mask: Value; visible: Value }): Value;
}

/** A model whose attention is spelled by `s`, with inputs q, k, v, an additive and a bool mask. */
function modelOf(s: Spelling, keyLayout: "BHND" | "BNHD" = "BHND"): Model {
  const model = new Model({ opsets: { "": 18 } });
  const b = new Builder(model.graph);
  const f = DataType.FLOAT;
  const query = b.input("query", f, [1, H, T, D]);
  const key = b.input("key", f, keyLayout === "BHND" ? [1, s.kvHeads, N, D] : [1, N, s.kvHeads, D]);
  const value = b.input("value", f, [1, s.kvHeads, N, D]);
  const mask = b.input("mask", f, [1, 1, T, N]);
  const visible = b.input("visible", DataType.BOOL, [1, 1, T, N]);
  b.output(s.attend(b, { query, key, value, mask, visible }), "out", tensorType(f, [1, H, T, D]));
  return model;
}

const transposeK = (b: Builder, k: Value) => b.op.Transpose(k, { perm: [0, 1, 3, 2] });
const repeatByExpand = (b: Builder, x: Value, groups: number) =>
  b.op.Reshape(b.op.Expand(b.op.Unsqueeze(x, b.int64([2])), b.int64([1, 1, groups, 1, 1])), b.int64([1, H, N, D]));
const repeatByTile = (b: Builder, x: Value, groups: number) =>
  b.op.Reshape(b.op.Tile(b.op.Unsqueeze(x, b.int64([2])), b.int64([1, 1, groups, 1, 1])), b.int64([0, H, -1, D]));
const repeatByReshape5 = (b: Builder, x: Value, groups: number) =>
  b.op.Reshape(b.op.Expand(b.op.Reshape(x, b.int64([1, H / groups, 1, N, D])), b.int64([1, 1, groups, 1, 1])), b.int64([1, H, N, D]));
const softmax = (b: Builder, x: Value) => b.op.Softmax(x, { axis: -1 });

const SPELLINGS: Record<string, Spelling & { scale: number; softcap?: number }> = {
  "soft cap between the scale and the mask (Gemma 2), scale split over Q and the scores": {
    kvHeads: 2,
    scale: 0.0625,
    softcap: 0.0625, // small enough that tanh saturates: leaving the cap out would change the outputs
    attend: (b, x) => {
      const scores = b.op.Mul(b.op.MatMul(b.op.Mul(x.query, b.float32(0.25)), transposeK(b, repeatByExpand(b, x.key, 2))), b.float32(0.25));
      const capped = b.op.Mul(b.float32(0.0625), b.op.Tanh(b.op.Mul(scores, b.float32(16))));
      return b.op.MatMul(softmax(b, b.op.Add(capped, x.mask)), repeatByExpand(b, x.value, 2));
    },
  },
  "Mul on the scores, additive mask, GQA repeat by Expand": {
    kvHeads: 2,
    scale: 0.125,
    attend: (b, x) => {
      const scores = b.op.Mul(b.op.MatMul(x.query, transposeK(b, repeatByExpand(b, x.key, 2))), b.float32(0.125));
      return b.op.MatMul(softmax(b, b.op.Add(x.mask, scores)), repeatByExpand(b, x.value, 2));
    },
  },
  "Div on the scores, Where mask, MHA": {
    kvHeads: 4,
    scale: 1 / Math.sqrt(8),
    attend: (b, x) => {
      const scores = b.op.Div(b.op.MatMul(x.query, transposeK(b, x.key)), b.float32(Math.sqrt(8)));
      return b.op.MatMul(softmax(b, b.op.Where(x.visible, scores, b.float32(-3.4e38))), x.value);
    },
  },
  "scale split over Q and K, IsNaN guard, repeat by Tile": {
    kvHeads: 1,
    scale: 0.125,
    attend: (b, x) => {
      const q = b.op.Mul(x.query, b.float32(Math.sqrt(0.125)));
      const k = b.op.Mul(repeatByTile(b, x.key, 4), b.float32(Math.sqrt(0.125)));
      const p = softmax(b, b.op.Add(b.op.MatMul(q, transposeK(b, k)), x.mask));
      return b.op.MatMul(b.op.Where(b.op.IsNaN(p), b.float32(0), p), repeatByTile(b, x.value, 4));
    },
  },
  "3-D [B*H, S, D] layout, GQA repeated before the merge": {
    kvHeads: 2,
    scale: 0.125,
    attend: (b, x) => {
      const merge = (v: Value, length: number) => b.op.Reshape(v, b.int64([H, length, D]));
      const kT = b.op.Transpose(merge(repeatByExpand(b, x.key, 2), N), { perm: [0, 2, 1] });
      const scores = b.op.Add(b.op.Mul(b.op.MatMul(merge(x.query, T), kT), b.float32(0.125)), b.op.Reshape(x.mask, b.int64([1, T, N])));
      const out = b.op.MatMul(softmax(b, scores), merge(repeatByExpand(b, x.value, 2), N)); // [B*H, T, D]
      return b.op.Reshape(out, b.int64([1, H, T, D]));
    },
  },
  "GQA repeat by a 5-D Reshape and Expand, scale on the scores by Mul with the constant first": {
    kvHeads: 2,
    scale: 0.25,
    attend: (b, x) => {
      const scores = b.op.Mul(b.float32(0.25), b.op.MatMul(x.query, transposeK(b, repeatByReshape5(b, x.key, 2))));
      return b.op.MatMul(softmax(b, b.op.Add(scores, x.mask)), repeatByReshape5(b, x.value, 2));
    },
  },
  "inverted Where (true hides), unscaled": {
    kvHeads: 4,
    scale: 1,
    attend: (b, x) => {
      const scores = b.op.MatMul(x.query, transposeK(b, x.key));
      return b.op.MatMul(softmax(b, b.op.Where(b.op.Not(x.visible), b.float32(-1e9), scores)), x.value);
    },
  },
};

async function run(model: Model, feeds?: Record<string, ort.Tensor>): Promise<{ out: Float32Array; feeds: Record<string, ort.Tensor> }> {
  const session = await ort.InferenceSession.create(modelBytes(model));
  const inputs = feeds ?? seededFeeds(session, 3);
  // Every row keeps at least one visible key so no softmax row is empty.
  if (!feeds) (inputs["visible"]!.data as Uint8Array).forEach((_, i, a) => i % N === 0 && (a[i] = 1));
  const results = await session.run(inputs);
  const out = results["out"]!.data as Float32Array; // the graph output keeps its name
  await session.release();
  return { out, feeds: inputs };
}

describe("lift-decomposed-attention", () => {
  for (const [name, spelling] of Object.entries(SPELLINGS)) {
    it(`lifts ${name}, and lowering gives the same outputs`, async () => {
      const model = modelOf(spelling);
      const before = await run(model);
      expect(liftAttention(model).rules[0]!.rewritten).toBe(1);
      const [node] = model.graph.nodeArray().filter(isCanonical);
      const attrs = readCanonical(node!);
      expect({ heads: attrs.num_heads, kvHeads: attrs.kv_num_heads }).toEqual({ heads: H, kvHeads: spelling.kvHeads });
      expect(attrs.scale).toBeCloseTo(spelling.scale, 6);
      expect(attrs.softcap).toBe(spelling.softcap);
      // Nothing of the old chain survives: the canonical node reads the un-repeated K and V.
      expect(model.graph.nodeArray().filter((n) => n.op === "Softmax" || n.op === "Expand" || n.op === "Tile")).toEqual([]);
      expect(node!.inputs[1]!.name).toBe("key");
      lowerAttention(model);
      const after = await run(model, before.feeds);
      after.out.forEach((x, i) => expect(Math.abs(x - before.out[i]!)).toBeLessThanOrEqual(1e-5));
    });
  }

  it("lifts K^T folded into one Transpose of [B, N, Hkv, D]", async () => {
    const model = modelOf(
      {
        kvHeads: 4,
        attend: (b, x) => b.op.MatMul(softmax(b, b.op.MatMul(x.query, b.op.Transpose(x.key, { perm: [0, 2, 3, 1] }))), x.value),
      },
      "BNHD",
    );
    const before = await run(model);
    expect(liftAttention(model).rewrites).toBe(1);
    lowerAttention(model);
    const after = await run(model, before.feeds);
    after.out.forEach((x, i) => expect(Math.abs(x - before.out[i]!)).toBeLessThanOrEqual(1e-5));
  });

  it("refuses a repeat that interleaves heads, and says why", () => {
    const interleaved: Spelling = {
      kvHeads: 2,
      attend: (b, x) => {
        const repeat = (v: Value) => b.op.Reshape(b.op.Expand(b.op.Unsqueeze(v, b.int64([1])), b.int64([1, 2, 1, 1, 1])), b.int64([1, H, N, D]));
        return b.op.MatMul(softmax(b, b.op.MatMul(x.query, transposeK(b, repeat(x.key)))), repeat(x.value));
      },
    };
    const report = findAttentionBlocks(modelOf(interleaved));
    expect(report.layers).toEqual([]);
    expect(report.unrecognised).toHaveLength(1);
    expect(report.unrecognised[0]!.reason).toContain("repeat-KV unsqueezes axis 1, not 2");
  });

  it("does not take a Softmax over the wrong axis for attention", () => {
    const wrongAxis: Spelling = {
      kvHeads: 4,
      attend: (b, x) => b.op.MatMul(b.op.Softmax(b.op.MatMul(x.query, transposeK(b, x.key)), { axis: 2 }), x.value),
    };
    const report = findAttentionBlocks(modelOf(wrongAxis));
    expect(report.layers).toEqual([]);
    expect(report.unrecognised[0]!.reason).toContain("axis");
  });
});
