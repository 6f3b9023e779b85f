import { describe, expect, it } from "vitest";
import { Builder, DataType, Graph, type TensorType, type Value } from "../graph/ir/index.ts";
import { inferShapes } from "../graph/ir/shape-inference/index.ts";

const typeOf = (v: Value) => v.type as TensorType;

describe("shape inference: elementwise ops", () => {
  it("broadcasts numpy-style, keeping symbols and taking numbers over 1", () => {
    const g = new Graph();
    const b = new Builder(g);
    const scores = b.input("scores", DataType.FLOAT, ["B", 4, "S", "T"]);
    const mask = b.input("mask", DataType.FLOAT, ["B", 1, 1, "T"]);
    const bias = b.input("bias", DataType.FLOAT, [64]);
    const x = b.input("x", DataType.FLOAT, ["B", "S", 1]);
    const sum = b.op.Add(scores, mask);
    const scaled = b.op.Mul(x, bias);
    const pow = b.op.Pow(scaled, b.float32(2));
    const ambiguous = b.op.Sub(b.input("p", DataType.FLOAT, ["P"]), b.input("q", DataType.FLOAT, ["Q"]));
    inferShapes(g);
    expect(typeOf(sum)).toEqual({ kind: "tensor", dtype: DataType.FLOAT, shape: ["B", 4, "S", "T"] });
    expect(typeOf(scaled).shape).toEqual(["B", "S", 64]);
    expect(typeOf(pow).shape).toEqual(["B", "S", 64]);
    // P and Q could each be 1 at run time: the result is not decidable.
    expect(typeOf(ambiguous).shape).toEqual([undefined]);
  });

  it("gives comparisons and logic ops a bool result", () => {
    const g = new Graph();
    const b = new Builder(g);
    const i = b.input("i", DataType.INT64, ["S", 1]);
    const j = b.input("j", DataType.INT64, ["T"]);
    const le = b.op.LessOrEqual(i, j);
    const both = b.op.And(le, b.op.Not(b.op.Equal(i, j)));
    const nan = b.op.IsNaN(b.input("f", DataType.FLOAT16, [3]));
    inferShapes(g);
    expect(typeOf(le)).toEqual({ kind: "tensor", dtype: DataType.BOOL, shape: ["S", "T"] });
    expect(typeOf(both)).toEqual({ kind: "tensor", dtype: DataType.BOOL, shape: ["S", "T"] });
    expect(typeOf(nan)).toEqual({ kind: "tensor", dtype: DataType.BOOL, shape: [3] });
  });

  it("types unary ops, Where and the com.microsoft activations like their data input", () => {
    const g = new Graph();
    const b = new Builder(g);
    const x = b.input("x", DataType.FLOAT16, ["B", "S", 128]);
    const cond = b.input("c", DataType.BOOL, ["S", 1]);
    const outs = ["Sqrt", "Reciprocal", "Exp", "Log", "Tanh", "Sigmoid", "Erf", "Relu", "Gelu", "Softplus", "Cos", "Sin", "Neg"].map((op) => b.op[op](x));
    const clip = b.op.Clip(x, undefined, undefined);
    const fast = b.domain("com.microsoft").FastGelu(x, b.input("fb", DataType.FLOAT16, [128]));
    const where = b.op.Where(cond, x, b.input("y", DataType.FLOAT16, []));
    inferShapes(g);
    for (const v of [...outs, clip, fast]) expect(typeOf(v)).toEqual({ kind: "tensor", dtype: DataType.FLOAT16, shape: ["B", "S", 128] });
    expect(typeOf(where).shape).toEqual(["B", "S", 128]);
    expect(typeOf(where).dtype).toBe(DataType.FLOAT16);
  });

  it("types QuantizeLinear by its zero point and DequantizeLinear by its scale", () => {
    const g = new Graph();
    const b = new Builder(g);
    const x = b.input("x", DataType.FLOAT, ["B", 64]);
    const q = b.op.QuantizeLinear(x, b.float32(0.1), b.input("zp", DataType.INT8, []));
    const qDefault = b.op.QuantizeLinear(x, b.float32(0.1));
    const dq = b.op.DequantizeLinear(q, b.input("s", DataType.FLOAT16, []));
    inferShapes(g);
    expect(q.type).toEqual({ kind: "tensor", dtype: DataType.INT8, shape: ["B", 64] });
    expect((qDefault.type as TensorType).dtype).toBe(DataType.UINT8);
    expect(dq.type).toEqual({ kind: "tensor", dtype: DataType.FLOAT16, shape: ["B", 64] });
  });

  it("folds Equal/Where over shape vectors the way torch exports replace -1", () => {
    const g = new Graph();
    const b = new Builder(g);
    const x = b.input("x", DataType.FLOAT, ["B", "S", 64]);
    const target = b.op.Shape(x);
    const isMinusOne = b.op.Equal(target, b.int64([-1, -1, -1]));
    const fixed = b.op.Where(isMinusOne, b.int64([1, 1, 1]), target);
    const expanded = b.op.Expand(b.input("row", DataType.FLOAT, [1, 1, 64]), fixed);
    inferShapes(g);
    expect(typeOf(expanded).shape).toEqual(["B", "S", 64]);
  });
});
