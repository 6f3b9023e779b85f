import { describe, expect, it } from "vitest";
import { Builder, DataType, Graph, Tensor, float, type TensorType, type Value } from "../graph/ir/index.ts";
import { inferShapes } from "../graph/ir/shape-inference/index.ts";

const typeOf = (v: Value) => v.type as TensorType;
const shapeOf = (v: Value) => typeOf(v).shape;

describe("shape inference: gathers and shape values", () => {
  it("types Gather, GatherElements and GatherND", () => {
    const g = new Graph();
    const b = new Builder(g);
    const emb = b.input("emb", DataType.FLOAT16, [32000, 64]);
    const ids = b.input("ids", DataType.INT64, ["B", "S"]);
    const rows = b.op.Gather(emb, ids);
    const cols = b.op.Gather(b.input("x", DataType.FLOAT, ["B", "S", 64]), b.int64(3), { axis: -1 });
    const el = b.op.GatherElements(b.input("d", DataType.FLOAT, ["B", 10]), b.input("i", DataType.INT64, ["B", 3]), { axis: 1 });
    const nd = b.op.GatherND(b.input("m", DataType.BOOL, ["B", 1, "T", "T"]), b.input("j", DataType.INT64, ["B", "S", 2]), { batch_dims: 1 });
    inferShapes(g);
    expect(typeOf(rows)).toEqual({ kind: "tensor", dtype: DataType.FLOAT16, shape: ["B", "S", 64] });
    expect(shapeOf(cols)).toEqual(["B", "S"]);
    expect(shapeOf(el)).toEqual(["B", 3]);
    expect(typeOf(nd)).toEqual({ kind: "tensor", dtype: DataType.BOOL, shape: ["B", "S", "T"] });
  });

  it("keeps the data's type through scatters (KV-cache updates) and gives NonZero [rank, ?] int64", () => {
    const g = new Graph();
    const b = new Builder(g);
    const cache = b.input("cache", DataType.FLOAT16, ["B", 2, 256, 16]);
    const updated = b.op.ScatterND(cache, b.input("idx", DataType.INT64, ["B", 2, "S", 3]), b.input("upd", DataType.FLOAT16, ["B", 2, "S", 16]));
    const nz = b.op.NonZero(b.input("m", DataType.BOOL, ["S", "T"]));
    inferShapes(g);
    expect(typeOf(updated)).toEqual({ kind: "tensor", dtype: DataType.FLOAT16, shape: ["B", 2, 256, 16] });
    expect(typeOf(nz)).toEqual({ kind: "tensor", dtype: DataType.INT64, shape: [2, undefined] });
  });

  it("gives Shape (with start/end) and Size int64 results whose contents feed later shapes", () => {
    const g = new Graph();
    const b = new Builder(g);
    const x = b.input("x", DataType.FLOAT, ["B", "S", 4, 16]);
    const tail = b.node("Shape", [x], { attributes: { start: -2 } }).output(0);
    const size = b.op.Size(x);
    const zeros = b.op.ConstantOfShape(tail, { value: Tensor.fromArray("v", DataType.INT32, [1], Int32Array.of(0)) });
    const filled = b.op.ConstantOfShape(b.op.Concat(b.op.Shape(x), b.int64([2]), { axis: 0 }));
    inferShapes(g);
    expect(typeOf(tail)).toEqual({ kind: "tensor", dtype: DataType.INT64, shape: [2] });
    expect(typeOf(size)).toEqual({ kind: "tensor", dtype: DataType.INT64, shape: [] });
    expect(typeOf(zeros)).toEqual({ kind: "tensor", dtype: DataType.INT32, shape: [4, 16] });
    expect(typeOf(filled)).toEqual({ kind: "tensor", dtype: DataType.FLOAT, shape: ["B", "S", 4, 16, 2] });
  });

  it("sizes Range from constant and symbolic bounds (positions past_length .. past_length + S)", () => {
    const g = new Graph();
    const b = new Builder(g);
    const past = b.input("past", DataType.FLOAT, ["B", 2, "P", 16]);
    const ids = b.input("ids", DataType.INT64, ["B", "S"]);
    const P = b.op.Gather(b.op.Shape(past), b.int64(2), { axis: 0 });
    const S = b.op.Gather(b.op.Shape(ids), b.int64(1), { axis: 0 });
    const positions = b.op.Range(P, b.op.Add(P, S), b.int64(1));
    const fixed = b.op.Range(b.int64(0), b.int64(10), b.int64(3));
    const floats = b.op.Range(b.float32(0), b.float32(1), b.float32(0.25));
    inferShapes(g);
    expect(typeOf(positions)).toEqual({ kind: "tensor", dtype: DataType.INT64, shape: ["S"] });
    expect(shapeOf(fixed)).toEqual([4]);
    expect(typeOf(floats)).toEqual({ kind: "tensor", dtype: DataType.FLOAT, shape: [4] });
  });

  it("types Constant (tensor and list forms), Cast, CastLike and Identity", () => {
    const g = new Graph();
    const b = new Builder(g);
    const c = b.op.Constant({ value: Tensor.fromArray("c", DataType.FLOAT, [2, 3], new Float32Array(6)) });
    const ints = b.op.Constant({ value_ints: [1, 2, 3] });
    const f = b.op.Constant({ value_float: float(0.5) });
    const x = b.input("x", DataType.INT32, ["B", "S"]);
    const cast = b.op.Cast(x, { to: DataType.INT64 });
    const like = b.op.CastLike(x, b.input("h", DataType.FLOAT16, [1]));
    const id = b.op.Identity(x);
    // A Cast between shape computations keeps the contents: Reshape sees [B*S].
    const flat = b.op.Reshape(b.input("y", DataType.FLOAT, ["B", "S"]), b.op.Cast(b.op.Mul(b.op.Size(x), b.int64([1])), { to: DataType.INT64 }));
    inferShapes(g);
    expect(typeOf(c)).toEqual({ kind: "tensor", dtype: DataType.FLOAT, shape: [2, 3] });
    expect(typeOf(ints)).toEqual({ kind: "tensor", dtype: DataType.INT64, shape: [3] });
    expect(typeOf(f)).toEqual({ kind: "tensor", dtype: DataType.FLOAT, shape: [] });
    expect(typeOf(cast)).toEqual({ kind: "tensor", dtype: DataType.INT64, shape: ["B", "S"] });
    expect(typeOf(like)).toEqual({ kind: "tensor", dtype: DataType.FLOAT16, shape: ["B", "S"] });
    expect(typeOf(id)).toEqual({ kind: "tensor", dtype: DataType.INT32, shape: ["B", "S"] });
    expect(shapeOf(flat)).toEqual(["B*S"]);
  });
});
