import { describe, expect, it } from "vitest";
import { Builder } from "../../graph/ir/builder.ts";
import { DataType } from "../../graph/ir/dtype.ts";
import { Graph } from "../../graph/ir/graph.ts";
import { Model } from "../../graph/ir/model.ts";
import { tensorType } from "../../graph/ir/types.ts";
import { Value } from "../../graph/ir/value.ts";
import { verifyModel } from "../../graph/ir/verifier.ts";
import { expectBitEqual, runOrt } from "../../test/helpers/ort-parity.ts";
import { createDce } from "./dce.ts";

const F = DataType.FLOAT;
const ctx = { options: {}, note() {} };

/** An If branch that returns Identity(`v`) read from the enclosing scope, plus optional dead work on `dead`. */
function branch(parent: Graph, name: string, v: Value, dead?: Value): Graph {
  const g = new Graph(name, { parent });
  const b = new Builder(g);
  if (dead) b.op.Neg(dead);
  b.output(b.op.Identity(v), undefined, tensorType(F, [2, 3]));
  return g;
}

/**
 * Live: out = Relu(x) + w, and an If choosing between two Identity(Relu(x)) branches.
 * Dead: Exp(Mul(x, c1)), an unused initializer, a Neg inside a live branch, and an If whose
 * branches are the only readers of Sigmoid(x). A graph input nothing reads must stay.
 */
function modelWithDeadCode(): Model {
  const model = new Model({ opsets: { "": 17 } });
  const g = model.graph;
  const b = new Builder(g);
  const x = b.input("x", F, [2, 3]);
  const cond = b.input("cond", DataType.BOOL, []);
  b.input("unused_in", F, [1]);
  const y = b.op.Relu(x);
  b.output(b.op.Add(y, b.float32([1, 2, 3])), "out", tensorType(F, [2, 3]));
  const liveIf = g.addNode("If", [cond], { attributes: { then_branch: branch(g, "then", y, x), else_branch: branch(g, "else", y) } });
  b.output(liveIf.output(), "chosen", tensorType(F, [2, 3]));

  const product = b.op.Mul(x, b.float32(2));
  g.valueInfo.add(b.typed(product, F, [2, 3]));
  b.op.Exp(product);
  b.float32([4, 5]);
  const s = b.op.Sigmoid(x);
  g.addNode("If", [cond], { attributes: { then_branch: branch(g, "then_dead", s), else_branch: branch(g, "else_dead", s) } });
  g.valueInfo.add(new Value(g, "ghost", tensorType(F, [1])));
  return model;
}

describe("dce", () => {
  it("removes dead nodes, initializers and value_info, inside subgraphs too, and keeps outputs bit for bit", async () => {
    const model = modelWithDeadCode();
    const before = await runOrt(model);
    const result = createDce().run(model, ctx);

    expect(result).toEqual({ changed: true, stats: { "nodes-removed": 5, "initializers-removed": 2, "value-info-removed": 1 } });
    expect(model.graph.nodeArray().map((n) => n.op)).toEqual(["Relu", "Add", "If"]);
    expect(model.graph.inputs.map((v) => v.name)).toEqual(["x", "cond", "unused_in"]);
    const [thenBranch] = model.graph.lastNode!.subgraphs();
    expect(thenBranch!.nodeArray().map((n) => n.op)).toEqual(["Identity"]);
    expect(model.graph.lookup("x")!.uses.map((u) => u.node.op)).toEqual(["Relu"]);
    expect(verifyModel(model)).toEqual([]);
    expectBitEqual(await runOrt(model), before);
  });

  it("reports no change on a model without dead code", () => {
    const model = modelWithDeadCode();
    createDce().run(model, ctx);
    expect(createDce().run(model, ctx).changed).toBe(false);
  });

  it("frees a dead chain in one run even when the graph is not in topological order", () => {
    const model = new Model();
    const g = model.graph;
    const b = new Builder(g);
    const x = b.input("x", F, [1]);
    b.output(b.op.Relu(x), "y", tensorType(F, [1]));
    const a = b.op.Abs(x);
    const n = b.op.Neg(a);
    g.moveBefore(a.producer!, n.producer!); // the consumer now comes first
    expect(createDce().run(model, ctx).stats).toMatchObject({ "nodes-removed": 2 });
    expect(g.nodeArray().map((node) => node.op)).toEqual(["Relu"]);
  });

  it("keeps a value a branch returns straight from the enclosing scope", () => {
    const model = new Model({ opsets: { "": 17 } });
    const g = model.graph;
    const b = new Builder(g);
    const x = b.input("x", F, [2, 3]);
    const returned = b.op.Abs(x);
    const thenBranch = new Graph("then", { parent: g });
    thenBranch.addOutput(returned);
    const node = g.addNode("If", [b.input("cond", DataType.BOOL, [])], { attributes: { then_branch: thenBranch, else_branch: branch(g, "else", x) } });
    b.output(node.output(), "y", tensorType(F, [2, 3]));
    // onnxruntime refuses such a model (it wants an Identity in between), but ONNX allows it.
    expect(createDce().run(model, ctx).changed).toBe(false);
    expect(verifyModel(model)).toEqual([]);
  });
});
