import { describe, expect, it } from "vitest";
import { Builder, DataType, Graph, type TensorType, type Value } from "../graph/ir/index.ts";
import { inferShapes } from "../graph/ir/shape-inference/index.ts";

const typeOf = (v: Value) => v.type as TensorType;
const shapeOf = (v: Value) => typeOf(v).shape;
const opset = (v: number) => ({ opsets: new Map([["", v]]) });

describe("shape inference: reductions and normalisations", () => {
  it("reduces by axes attribute (opset 17) or input (18), with and without keepdims", () => {
    for (const version of [17, 18]) {
      const g = new Graph();
      const b = new Builder(g);
      const x = b.input("x", DataType.FLOAT, ["B", "S", 64]);
      const axes = (a: number[]) => (version < 18 ? [{ axes: a }] : [b.int64(a)]);
      const mean = b.op.ReduceMean(x, ...axes([-1]));
      const max = version < 18 ? b.op.ReduceMax(x, { axes: [1], keepdims: 0 }) : b.op.ReduceMax(x, b.int64([1]), { keepdims: 0 });
      const all = b.op.ReduceMin(x, { keepdims: 0 });
      inferShapes(g, opset(version));
      expect(shapeOf(mean), `opset ${version}`).toEqual(["B", "S", 1]);
      expect(shapeOf(max), `opset ${version}`).toEqual(["B", 64]);
      expect(shapeOf(all), `opset ${version}`).toEqual([]);
    }
  });

  it("takes ReduceSum axes from the input from opset 13 and honours noop_with_empty_axes", () => {
    const g = new Graph();
    const b = new Builder(g);
    const mask = b.input("mask", DataType.INT64, ["B", "T"]);
    const lengths = b.op.ReduceSum(mask, b.int64([1]), { keepdims: 0 });
    const noop = b.op.ReduceSum(mask, { noop_with_empty_axes: 1 });
    const runtimeAxes = b.op.ReduceSum(mask, b.input("axes", DataType.INT64, [1]));
    inferShapes(g, opset(13));
    expect(typeOf(lengths)).toEqual({ kind: "tensor", dtype: DataType.INT64, shape: ["B"] });
    expect(shapeOf(noop)).toEqual(["B", "T"]);
    expect(shapeOf(runtimeAxes)).toEqual([undefined, undefined]);
  });

  it("types ArgMax, TopK, Softmax, LogSoftmax, CumSum and Trilu", () => {
    const g = new Graph();
    const b = new Builder(g);
    const logits = b.input("logits", DataType.FLOAT, ["B", "S", 32000]);
    const arg = b.op.ArgMax(logits, { axis: -1, keepdims: 0 });
    const [vals, idx] = b.node("TopK", [logits, b.int64([50])], { outputs: 2, attributes: { axis: -1 } }).outputs as Value[];
    const soft = b.op.Softmax(logits, { axis: -1 });
    const logSoft = b.op.LogSoftmax(logits);
    const cum = b.op.CumSum(logits, b.int64(2));
    const tri = b.op.Trilu(b.input("m", DataType.FLOAT, ["S", "T"]), { upper: 1 });
    inferShapes(g);
    expect(typeOf(arg)).toEqual({ kind: "tensor", dtype: DataType.INT64, shape: ["B", "S"] });
    expect(typeOf(vals)).toEqual({ kind: "tensor", dtype: DataType.FLOAT, shape: ["B", "S", 50] });
    expect(typeOf(idx)).toEqual({ kind: "tensor", dtype: DataType.INT64, shape: ["B", "S", 50] });
    for (const v of [soft, logSoft, cum]) expect(shapeOf(v)).toEqual(["B", "S", 32000]);
    expect(shapeOf(tri)).toEqual(["S", "T"]);
  });

  it("types LayerNormalization statistics, RMS norms and the com.microsoft fused norms", () => {
    const g = new Graph();
    const b = new Builder(g);
    const x = b.input("x", DataType.FLOAT16, ["B", "S", 64]);
    const w = b.input("w", DataType.FLOAT16, [64]);
    const [y, mean, inv] = b.node("LayerNormalization", [x, w], { outputs: 3, attributes: { axis: -1 } }).outputs as Value[];
    const rms = b.op.RMSNormalization(x, w);
    const simplified = b.op.SimplifiedLayerNormalization(x, w);
    const skip = b.node("SkipLayerNormalization", [x, x, w, w], { domain: "com.microsoft", outputs: 4 }).outputs as Value[];
    const skipSimple = b.node("SkipSimplifiedLayerNormalization", [x, x, w], { domain: "com.microsoft", outputs: 4 }).outputs as Value[];
    const ids = b.input("ids", DataType.INT32, ["B", "S"]);
    const emb = b.node("EmbedLayerNormalization", [ids, undefined, b.input("we", DataType.FLOAT16, [1000, 64]), b.input("pe", DataType.FLOAT16, [512, 64]), undefined, w, w], { domain: "com.microsoft", outputs: 3 }).outputs as Value[];
    inferShapes(g, { opsets: new Map([["", 23], ["com.microsoft", 1]]) });
    expect(typeOf(y)).toEqual({ kind: "tensor", dtype: DataType.FLOAT16, shape: ["B", "S", 64] });
    expect(typeOf(mean)).toEqual({ kind: "tensor", dtype: DataType.FLOAT, shape: ["B", "S", 1] });
    expect(shapeOf(inv)).toEqual(["B", "S", 1]);
    expect(shapeOf(rms)).toEqual(["B", "S", 64]);
    expect(shapeOf(simplified)).toEqual(["B", "S", 64]);
    for (const outs of [skip, skipSimple]) {
      expect(typeOf(outs[0])).toEqual({ kind: "tensor", dtype: DataType.FLOAT16, shape: ["B", "S", 64] });
      expect(typeOf(outs[3])).toEqual({ kind: "tensor", dtype: DataType.FLOAT16, shape: ["B", "S", 64] });
    }
    expect(typeOf(emb[0])).toEqual({ kind: "tensor", dtype: DataType.FLOAT16, shape: ["B", "S", 64] });
    expect(typeOf(emb[1])).toEqual({ kind: "tensor", dtype: DataType.INT32, shape: ["B"] });
  });
});
