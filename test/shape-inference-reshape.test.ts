import { describe, expect, it } from "vitest";
import { Builder, DataType, Graph, type TensorType, type Value } from "../graph/ir/index.ts";
import { inferShapes } from "../graph/ir/shape-inference/index.ts";

const shapeOf = (v: Value) => (v.type as TensorType).shape;
const opset = (v: number) => ({ opsets: new Map([["", v]]) });

describe("shape inference: reshaping ops", () => {
  it("resolves a Reshape target built by a Shape -> Gather -> Unsqueeze -> Concat chain", () => {
    const g = new Graph();
    const b = new Builder(g);
    const x = b.input("x", DataType.FLOAT, ["batch_size", "sequence_length", 64]);
    const shape = b.op.Shape(x);
    const batch = b.op.Unsqueeze(b.op.Gather(shape, b.int64(0), { axis: 0 }), b.int64([0]));
    const seq = b.op.Unsqueeze(b.op.Gather(shape, b.int64(1), { axis: 0 }), b.int64([0]));
    const target = b.op.Concat(batch, seq, b.int64([4, 16]), { axis: 0 });
    const heads = b.op.Reshape(x, target);
    const merged = b.op.Reshape(heads, b.int64([0, 0, -1]));
    const flat = b.op.Reshape(x, b.int64([-1, 64]));
    inferShapes(g);
    expect(shapeOf(heads)).toEqual(["batch_size", "sequence_length", 4, 16]);
    expect(shapeOf(merged)).toEqual(["batch_size", "sequence_length", 64]);
    expect(shapeOf(flat)).toEqual(["batch_size*sequence_length", 64]);
  });

  it("knows the rank of a Reshape whose target is computed at run time", () => {
    const g = new Graph();
    const b = new Builder(g);
    const out = b.op.Reshape(b.input("x", DataType.FLOAT, ["B", 8]), b.input("t", DataType.INT64, [3]));
    inferShapes(g);
    expect(shapeOf(out)).toEqual([undefined, undefined, undefined]);
  });

  it("types Transpose, Flatten, Expand and Tile", () => {
    const g = new Graph();
    const b = new Builder(g);
    const x = b.input("x", DataType.FLOAT, ["B", "S", 4, 16]);
    const t = b.op.Transpose(x, { perm: [0, 2, 1, 3] });
    const rev = b.op.Transpose(x);
    const flat = b.op.Flatten(x, { axis: 2 });
    const e = b.op.Expand(b.input("m", DataType.BOOL, [1, 1, "S", "T"]), b.op.Shape(b.input("s", DataType.FLOAT, ["B", 4, 1, 1])));
    const tiled = b.op.Tile(b.input("k", DataType.FLOAT, ["B", 2, "P", 16]), b.int64([1, 2, 1, 1]));
    inferShapes(g);
    expect(shapeOf(t)).toEqual(["B", 4, "S", 16]);
    expect(shapeOf(rev)).toEqual([16, 4, "S", "B"]);
    expect(shapeOf(flat)).toEqual(["B*S", 64]);
    expect(shapeOf(e)).toEqual(["B", 4, "S", "T"]);
    expect(shapeOf(tiled)).toEqual(["B", 4, "P", 16]);
  });

  it("reads Unsqueeze/Squeeze axes from the attribute before opset 13 and the input after", () => {
    for (const version of [11, 13]) {
      const g = new Graph();
      const b = new Builder(g);
      const x = b.input("x", DataType.FLOAT, ["B", 1, "S"]);
      const axes = (a: number[]) => (version < 13 ? [{ axes: a }] : [b.int64(a)]);
      const u = b.op.Unsqueeze(x, ...axes([0, -1]));
      const s = b.op.Squeeze(x, ...axes([1]));
      const all = b.op.Squeeze(b.input("y", DataType.FLOAT, [1, 3, 1]));
      const symbolic = b.op.Squeeze(x);
      inferShapes(g, opset(version));
      expect(shapeOf(u), `opset ${version}`).toEqual([1, "B", 1, "S", 1]);
      expect(shapeOf(s), `opset ${version}`).toEqual(["B", "S"]);
      expect(shapeOf(all)).toEqual([3]);
      // Squeezing without axes drops every 1: undecidable while a dim is symbolic.
      expect(shapeOf(symbolic)).toBeUndefined();
    }
  });
});
