import { describe, expect, it } from "vitest";
import { Builder, DataType, Graph, Model, tensorType, type TensorType, type Value } from "../graph/ir/index.ts";
import { inferShapes } from "../graph/ir/shape-inference/index.ts";

const shapeOf = (v: Value) => (v.type as TensorType).shape;

describe("shape inference: report and merging with declared types", () => {
  it("counts unsupported ops, leaves their outputs alone and carries on past them", () => {
    const g = new Graph();
    const b = new Builder(g);
    const x = b.input("x", DataType.FLOAT, ["B", 8]);
    const mystery = b.domain("custom.domain").Frobnicate(x);
    const again = b.domain("custom.domain").Frobnicate(x);
    b.typed(again, DataType.FLOAT, ["B", 8]);
    const after = b.op.Relu(again);
    const lost = b.op.Relu(mystery);
    const report = inferShapes(new Model({ graph: g }));
    expect(report.unknownOps).toEqual(new Map([["custom.domain::Frobnicate", 2]]));
    expect(mystery.type).toBeUndefined();
    expect(shapeOf(after)).toEqual(["B", 8]);
    expect(lost.type).toBeUndefined();
    expect(report.inferred).toBe(1);
  });

  it("fills unknown dims of a declared type, prefers numbers, keeps declared symbols and records what they equal", () => {
    const g = new Graph();
    const b = new Builder(g);
    const past = b.input("past", DataType.FLOAT, ["B", 2, "P", 16]);
    const cur = b.input("cur", DataType.FLOAT, ["B", 2, "S", 16]);
    const present = b.typed(b.op.Concat(past, cur, { axis: 2 }), DataType.FLOAT, [undefined, "two", "total_sequence_length", 16]);
    const report = inferShapes(g);
    expect(shapeOf(present)).toEqual(["B", 2, "total_sequence_length", 16]);
    expect(report.equalities).toEqual([{ value: present.name, declared: "total_sequence_length", inferred: "P + S" }]);
    expect(report.warnings).toEqual([]);
    expect(report.inferred).toBe(1);
  });

  it("reports contradictions with declared types as warnings and keeps the declaration", () => {
    const g = new Graph();
    const b = new Builder(g);
    const x = b.input("x", DataType.FLOAT, ["B", 8]);
    const wrongRank = b.typed(b.op.Relu(x), DataType.FLOAT, ["B", 8, 1]);
    const wrongDim = b.typed(b.op.Relu(x), DataType.FLOAT, ["B", 9]);
    const wrongType = b.typed(b.op.Relu(x), DataType.FLOAT16, ["B", 8]);
    const report = inferShapes(g);
    expect(shapeOf(wrongRank)).toEqual(["B", 8, 1]);
    expect(shapeOf(wrongDim)).toEqual(["B", 9]);
    expect((wrongType.type as TensorType).dtype).toBe(DataType.FLOAT16);
    expect(report.warnings.map((w) => [w.value, w.message])).toEqual([
      [wrongRank.name, "declared rank 3, inferred rank 2"],
      [wrongDim.name, "axis 1: declared 9, inferred 8"],
      [wrongType.name, `declared element type ${DataType.FLOAT16}, inferred ${DataType.FLOAT}`],
    ]);
  });

  it("does not throw on an attribute of the wrong kind", () => {
    const g = new Graph();
    const b = new Builder(g);
    const x = b.input("x", DataType.FLOAT, ["B", 8]);
    const bad = b.op.Transpose(x, { perm: "oops" } as never);
    const fine = b.op.Relu(x);
    const report = inferShapes(g);
    expect(shapeOf(bad)).toEqual([8, "B"]);
    expect(shapeOf(fine)).toEqual(["B", 8]);
    expect(report.unknownOps.size).toBe(0);
  });

  it("infers inside If branches and keeps what both branches agree on", () => {
    const g = new Graph();
    const b = new Builder(g);
    const x = b.input("x", DataType.FLOAT, ["B", "S", 8]);
    const branch = (shape: number[]) => {
      const sub = new Graph("branch", { parent: g });
      const sb = new Builder(sub);
      sub.addOutput(sb.op.Reshape(x, sb.int64(shape)));
      return sub;
    };
    const thenG = branch([0, 0, 2, 4]);
    const elseG = branch([0, 0, 4, 2]);
    const y = b.op.If(b.input("c", DataType.BOOL, []), { then_branch: thenG, else_branch: elseG });
    inferShapes(g);
    expect(shapeOf(thenG.outputs[0])).toEqual(["B", "S", 2, 4]);
    expect(y.type).toEqual(tensorType(DataType.FLOAT, ["B", "S", undefined, undefined]));
  });

  it("keeps a Loop-carried value's agreed dims and stacks scan outputs on an unknown axis", () => {
    const g = new Graph();
    const b = new Builder(g);
    const x = b.input("x", DataType.FLOAT, ["B", 8]);
    const body = new Graph("body", { parent: g });
    const bb = new Builder(body);
    bb.input("iter", DataType.INT64, []);
    const cond = bb.input("cond", DataType.BOOL, []);
    const acc = bb.input("acc", DataType.FLOAT, ["B", undefined]);
    body.addOutput(bb.op.Identity(cond));
    body.addOutput(bb.op.Concat(acc, x, { axis: 1 }));
    body.addOutput(bb.op.Relu(x));
    const [grown, stacked] = b.node("Loop", [b.int64(3), undefined, x], { outputs: 2, attributes: { body } }).outputs as Value[];
    inferShapes(g);
    expect(grown.type).toEqual(tensorType(DataType.FLOAT, ["B", undefined]));
    expect(stacked.type).toEqual(tensorType(DataType.FLOAT, [undefined, "B", 8]));
  });
});
