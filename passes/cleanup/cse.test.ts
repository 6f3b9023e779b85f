import { describe, expect, it } from "vitest";
import { Builder } from "../../graph/ir/builder.ts";
import { DataType } from "../../graph/ir/dtype.ts";
import { Graph } from "../../graph/ir/graph.ts";
import { Model } from "../../graph/ir/model.ts";
import { Tensor } from "../../graph/ir/tensor.ts";
import { tensorType } from "../../graph/ir/types.ts";
import type { Value } from "../../graph/ir/value.ts";
import { verifyModel } from "../../graph/ir/verifier.ts";
import { expectBitEqual, runOrt } from "../../test/helpers/ort-parity.ts";
import { createCse } from "./cse.ts";

const F = DataType.FLOAT;
const ctx = { options: {}, note() {} };
const ops = (g: Graph) => g.nodeArray().map((n) => n.op);

function identityBranch(parent: Graph, name: string, v: Value): Graph {
  const g = new Graph(name, { parent });
  const b = new Builder(g);
  b.output(b.op.Identity(v), undefined, tensorType(F, [2, 3]));
  return g;
}

/**
 * Duplicates CSE merges: Relu(x) twice, two equal initializers (which make the two Adds equal),
 * two equal Constant nodes. Duplicates it must keep: two Ifs with equal branches, and a Relu
 * whose output is a graph output.
 */
function modelWithDuplicates(): Model {
  const model = new Model({ opsets: { "": 17 } });
  const g = model.graph;
  const b = new Builder(g);
  const x = b.input("x", F, [2, 3]);
  const cond = b.input("cond", DataType.BOOL, []);
  const sum1 = b.op.Add(b.op.Relu(x), b.float32([1, 2, 3]));
  const sum2 = b.op.Add(b.op.Relu(x), b.float32([1, 2, 3]));
  const k = () => b.op.Constant({ value: Tensor.fromArray("k", F, [3], Float32Array.of(0.5, 0.25, 2)) });
  const scaled = b.op.Mul(b.op.Mul(sum1, sum2), b.op.Add(k(), k()));
  b.output(scaled, "out", tensorType(F, [2, 3]));
  const if1 = g.addNode("If", [cond], { attributes: { then_branch: identityBranch(g, "t1", x), else_branch: identityBranch(g, "e1", scaled) } });
  const if2 = g.addNode("If", [cond], { attributes: { then_branch: identityBranch(g, "t2", x), else_branch: identityBranch(g, "e2", scaled) } });
  b.output(b.op.Sub(if1.output(), if2.output()), "diff", tensorType(F, [2, 3]));
  b.output(b.op.Relu(x), "relu_out", tensorType(F, [2, 3]));
  return model;
}

describe("cse", () => {
  it("merges equal nodes and initializers, and outputs stay bit for bit", async () => {
    const model = modelWithDuplicates();
    const before = await runOrt(model);
    const result = createCse().run(model, ctx);

    expect(result).toEqual({ changed: true, stats: { "nodes-merged": 3, "initializers-merged": 1 } });
    expect(ops(model.graph)).toEqual(["Relu", "Add", "Mul", "Constant", "Add", "Mul", "If", "If", "Sub", "Relu"]);
    expect(model.graph.initializers.size).toBe(1);
    expect(verifyModel(model)).toEqual([]);
    expectBitEqual(await runOrt(model), before);
    expect(createCse().run(model, ctx).changed).toBe(false);
  });

  it("never merges non-deterministic operators", () => {
    const model = new Model();
    const b = new Builder(model.graph);
    const x = b.input("x", F, [4]);
    const r1 = b.op.RandomUniformLike(x, { seed: 1.5 });
    const r2 = b.op.RandomUniformLike(x, { seed: 1.5 });
    b.output(b.op.Sub(r1, r2), "noise", tensorType(F, [4]));
    expect(createCse().run(model, ctx).changed).toBe(false);
    expect(ops(model.graph)).toEqual(["RandomUniformLike", "RandomUniformLike", "Sub"]);
  });

  it("compares constants by content, not by dtype, shape or size alone", () => {
    const model = new Model();
    const b = new Builder(model.graph);
    const x = b.input("x", F, [2]);
    const consts = [b.float32([1, 2]), b.float32([1, 3]), b.float32([1, 2], [2, 1]), b.float32([1, 2])];
    consts.forEach((c, i) => b.output(b.op.Add(x, c), `o${i}`));
    expect(createCse().run(model, ctx).stats).toEqual({ "nodes-merged": 0, "initializers-merged": 1 });
    expect([...model.graph.initializers.keys()]).toHaveLength(3);
  });

  it("tells apart large constants that differ only after their first 4 KiB", () => {
    const model = new Model();
    const b = new Builder(model.graph);
    const x = b.input("x", F, [2048]);
    const ramp = () => Array.from({ length: 2048 }, (_, i) => i);
    const differentTail = ramp();
    differentTail[2047] = -1;
    [ramp(), differentTail, ramp()].forEach((values, i) => b.output(b.op.Add(x, b.float32(values)), `o${i}`));
    expect(createCse().run(model, ctx).stats).toEqual({ "nodes-merged": 0, "initializers-merged": 1 });
    expect([...model.graph.initializers.values()].map((v) => v.initializer!.toArray()[2047])).toEqual([2047, -1]);
  });

  it("merges duplicates inside a subgraph", () => {
    const model = new Model();
    const g = model.graph;
    const b = new Builder(g);
    const x = b.input("x", F, [2]);
    const body = new Graph("then", { parent: g });
    const bb = new Builder(body);
    bb.output(bb.op.Add(bb.op.Neg(x), bb.op.Neg(x)), undefined, tensorType(F, [2]));
    const node = g.addNode("If", [b.input("c", DataType.BOOL, [])], { attributes: { then_branch: body, else_branch: identityBranch(g, "else", x) } });
    b.output(node.output(), "y");
    expect(createCse().run(model, ctx).stats).toEqual({ "nodes-merged": 1, "initializers-merged": 0 });
    expect(ops(body)).toEqual(["Neg", "Add"]);
  });

  it("keeps a duplicate that a branch returns straight from the enclosing scope", () => {
    const model = new Model({ opsets: { "": 17 } });
    const g = model.graph;
    const b = new Builder(g);
    const x = b.input("x", F, [2, 3]);
    const first = b.op.Abs(x);
    const returned = b.op.Abs(x);
    const thenBranch = new Graph("then", { parent: g });
    thenBranch.addOutput(returned);
    const node = g.addNode("If", [b.input("cond", DataType.BOOL, [])], { attributes: { then_branch: thenBranch, else_branch: identityBranch(g, "else", first) } });
    b.output(node.output(), "y", tensorType(F, [2, 3]));
    // onnxruntime refuses such a model (it wants an Identity in between), but ONNX allows it.
    expect(createCse().run(model, ctx).changed).toBe(false);
    expect(verifyModel(model)).toEqual([]);
  });
});
