import { describe, expect, it } from "vitest";
import { Builder, DataType, Graph, type TensorType, type Value } from "../graph/ir/index.ts";
import { inferShapes } from "../graph/ir/shape-inference/index.ts";

const shapeOf = (v: Value) => (v.type as TensorType).shape;
const OPSETS = { opsets: new Map([["", 24], ["com.microsoft", 1]]) };
const F = DataType.FLOAT;

describe("shape inference: fused attention", () => {
  it("types ONNX Attention with 3-D inputs and a KV cache", () => {
    const g = new Graph();
    const b = new Builder(g);
    const q = b.input("q", F, ["B", "S", 8 * 16]);
    const kv = b.input("kv", F, ["B", "S", 2 * 16]);
    const past = b.input("past_key", F, ["B", 2, "P", 16]);
    const outs = b.node("Attention", [q, kv, kv, undefined, past, past], { outputs: 4, attributes: { q_num_heads: 8, kv_num_heads: 2 } }).outputs as Value[];
    inferShapes(g, OPSETS);
    expect(outs.map(shapeOf)).toEqual([
      ["B", "S", 128],
      ["B", 2, "P + S", 16],
      ["B", 2, "P + S", 16],
      ["B", 8, "S", "P + S"],
    ]);
  });

  it("types ONNX Attention with 4-D inputs and no cache", () => {
    const g = new Graph();
    const b = new Builder(g);
    const q = b.input("q", F, ["B", 8, "S", 16]);
    const k = b.input("k", F, ["B", 8, "L", 16]);
    const v = b.input("v", F, ["B", 8, "L", 32]);
    const [y, presentK, presentV] = b.node("Attention", [q, k, v], { outputs: 3 }).outputs as Value[];
    inferShapes(g, OPSETS);
    expect(shapeOf(y)).toEqual(["B", 8, "S", 32]);
    expect(shapeOf(presentK)).toEqual(["B", 8, "L", 16]);
    expect(shapeOf(presentV)).toEqual(["B", 8, "L", 32]);
  });

  it("types com.microsoft MultiHeadAttention with past key/value", () => {
    const g = new Graph();
    const b = new Builder(g);
    const x = b.input("x", F, ["B", "S", 64]);
    const past = b.input("past", F, ["B", 4, "P", 16]);
    const outs = b.node("MultiHeadAttention", [x, x, x, undefined, undefined, undefined, past, past], { domain: "com.microsoft", outputs: 3, attributes: { num_heads: 4 } }).outputs as Value[];
    inferShapes(g, OPSETS);
    expect(outs.map(shapeOf)).toEqual([["B", "S", 64], ["B", 4, "P + S", 16], ["B", 4, "P + S", 16]]);
  });

  it("sizes GroupQueryAttention's present cache by total_sequence_length when it is known", () => {
    const g = new Graph();
    const b = new Builder(g);
    const q = b.input("q", DataType.FLOAT16, ["B", "S", 4 * 16]);
    const kv = b.input("kv", DataType.FLOAT16, ["B", "S", 2 * 16]);
    const past = b.input("past", DataType.FLOAT16, ["B", 2, "P", 16]);
    const mask = b.input("attention_mask", DataType.INT64, ["B", "T"]);
    const seqlens = b.op.Cast(b.op.Sub(b.op.ReduceSum(mask, b.int64([1])), b.int64(1)), { to: DataType.INT32 });
    const total = b.op.Cast(b.op.Gather(b.op.Shape(mask), b.int64(1), { axis: 0 }), { to: DataType.INT32 });
    const attrs = { domain: "com.microsoft", outputs: 3, attributes: { num_heads: 4, kv_num_heads: 2 } };
    const known = b.node("GroupQueryAttention", [q, kv, kv, past, past, seqlens, total], attrs).outputs as Value[];
    const packed = b.node("GroupQueryAttention", [b.input("qkv", DataType.FLOAT16, ["B", "S", 8 * 16]), undefined, undefined, past, past, seqlens, b.input("t", DataType.INT32, [])], attrs).outputs as Value[];
    inferShapes(g, OPSETS);
    expect(known.map(shapeOf)).toEqual([["B", "S", 64], ["B", 2, "T", 16], ["B", 2, "T", 16]]);
    // Unknown total length: without a shared buffer the cache grows by S.
    expect(packed.map(shapeOf)).toEqual([["B", "S", 64], ["B", 2, "P + S", 16], ["B", 2, "P + S", 16]]);
  });

  it("types GPT-2 style com.microsoft Attention with a combined [2, B, H, P, D] cache", () => {
    const g = new Graph();
    const b = new Builder(g);
    const x = b.input("x", F, ["B", "S", 32]);
    const w = b.input("w", F, [32, 96]);
    const bias = b.input("bias", F, [96]);
    const past = b.input("past", F, [2, "B", 4, "P", 8]);
    const [y, present] = b.node("Attention", [x, w, bias, b.input("mask", DataType.INT32, ["B", "T"]), past], { domain: "com.microsoft", outputs: 2, attributes: { num_heads: 4, unidirectional: 1 } }).outputs as Value[];
    const noPast = b.node("Attention", [x, w, bias], { domain: "com.microsoft", outputs: 2, attributes: { num_heads: 4 } }).outputs as Value[];
    inferShapes(g, OPSETS);
    expect(shapeOf(y)).toEqual(["B", "S", 32]);
    expect(shapeOf(present)).toEqual([2, "B", 4, "P + S", 8]);
    expect(shapeOf(noPast[1])).toEqual([2, "B", 4, "S", 8]);
  });

  it("keeps RotaryEmbedding's input type (opset 23 and com.microsoft)", () => {
    const g = new Graph();
    const b = new Builder(g);
    const x = b.input("x", DataType.FLOAT16, ["B", 8, "S", 16]);
    const cache = b.input("cos", DataType.FLOAT16, [256, 8]);
    const ids = b.input("pos", DataType.INT64, ["B", "S"]);
    const onnx = b.op.RotaryEmbedding(x, cache, cache, ids);
    const ms = b.domain("com.microsoft").RotaryEmbedding(x, ids, cache, cache);
    inferShapes(g, OPSETS);
    expect(onnx.type).toEqual({ kind: "tensor", dtype: DataType.FLOAT16, shape: ["B", 8, "S", 16] });
    expect(ms.type).toEqual(onnx.type);
  });
});
