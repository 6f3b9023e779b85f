import { describe, expect, it } from "vitest";
import { Builder, DataType, Graph, type TensorType, type Value } from "../graph/ir/index.ts";
import { inferShapes } from "../graph/ir/shape-inference/index.ts";

const shapeOf = (v: Value) => (v.type as TensorType).shape;
const opset = (v: number) => ({ opsets: new Map([["", v]]) });

describe("shape inference: Concat, Split, Slice", () => {
  it("adds symbolic lengths along the Concat axis in canonical order", () => {
    const g = new Graph();
    const b = new Builder(g);
    const past = b.input("past", DataType.FLOAT, ["batch_size", 2, "past_sequence_length", 16]);
    const cur = b.input("cur", DataType.FLOAT, ["batch_size", 2, "sequence_length", 16]);
    const present = b.op.Concat(past, cur, { axis: -2 });
    const reversed = b.op.Concat(cur, past, { axis: 2 });
    const twice = b.op.Concat(cur, cur, { axis: 2 });
    inferShapes(g);
    expect(shapeOf(present)).toEqual(["batch_size", 2, "past_sequence_length + sequence_length", 16]);
    expect(shapeOf(reversed)).toEqual(["batch_size", 2, "past_sequence_length + sequence_length", 16]);
    expect(shapeOf(twice)).toEqual(["batch_size", 2, "2*sequence_length", 16]);
  });

  it("splits by attribute (opset 11), by input (13) and evenly by num_outputs (18)", () => {
    const cases: [number, (b: Builder, x: Value) => Value[], (number | string)[][]][] = [
      [11, (b, x) => b.node("Split", [x], { outputs: 2, attributes: { axis: 2, split: [64, 128] } }).outputs as Value[], [[64], [128]]],
      [13, (b, x) => b.node("Split", [x, b.int64([64, 64, 64])], { outputs: 3, attributes: { axis: -1 } }).outputs as Value[], [[64], [64], [64]]],
      [13, (b, x) => b.node("Split", [x], { outputs: 3, attributes: { axis: 2 } }).outputs as Value[], [[64], [64], [64]]],
      [18, (b, x) => b.node("Split", [x], { outputs: 5, attributes: { axis: 2, num_outputs: 5 } }).outputs as Value[], [[39], [39], [39], [39], [36]]],
    ];
    for (const [version, make, widths] of cases) {
      const g = new Graph();
      const b = new Builder(g);
      const outs = make(b, b.input("x", DataType.FLOAT, ["B", "S", 192]));
      inferShapes(g, opset(version));
      expect(outs.map(shapeOf), `opset ${version}`).toEqual(widths.map(([w]) => ["B", "S", w]));
    }
  });

  it("slices numbers exactly and symbolic dims by their bounds", () => {
    const g = new Graph();
    const b = new Builder(g);
    const x = b.input("x", DataType.FLOAT, ["B", "S", 64]);
    const BIG = 2 ** 62;
    const half = b.op.Slice(x, b.int64([32]), b.int64([BIG]), b.int64([2]));
    const stepped = b.op.Slice(x, b.int64([1]), b.int64([64]), b.int64([-1]), b.int64([3]));
    const last = b.op.Slice(x, b.int64([-1]), b.int64([BIG]), b.int64([1]));
    const rest = b.op.Slice(x, b.int64([1]), b.int64([BIG]), b.int64([1]));
    const backwards = b.op.Slice(x, b.int64([-1]), b.int64([-BIG]), b.int64([2]), b.int64([-1]));
    // The cos/sin-cache pattern: cache[:S] with S read from another tensor's shape.
    const cache = b.input("cos_cache", DataType.FLOAT, [256, 8]);
    const S = b.op.Gather(b.op.Shape(x), b.int64([1]), { axis: 0 });
    const rows = b.op.Slice(cache, b.int64([0]), S, b.int64([0]));
    inferShapes(g);
    expect(shapeOf(half)).toEqual(["B", "S", 32]);
    expect(shapeOf(stepped)).toEqual(["B", "S", 21]);
    expect(shapeOf(last)).toEqual(["B", 1, 64]);
    expect(shapeOf(rest)).toEqual(["B", "S - 1", 64]);
    expect(shapeOf(backwards)).toEqual(["B", "S", 64]);
    expect(shapeOf(rows)).toEqual(["S", 8]);
  });

  it("slices known shape vectors (Shape(x)[1:])", () => {
    const g = new Graph();
    const b = new Builder(g);
    const x = b.input("x", DataType.FLOAT, ["B", "S", 4, 16]);
    const tail = b.op.Slice(b.op.Shape(x), b.int64([2]), b.int64([4]));
    const y = b.op.Reshape(b.input("y", DataType.FLOAT, [64]), tail);
    inferShapes(g);
    expect(shapeOf(y)).toEqual([4, 16]);
  });
});
