import { describe, expect, it } from "vitest";
import { PipecError } from "../graph/errors.ts";
import { Builder } from "../graph/ir/builder.ts";
import { DataType } from "../graph/ir/dtype.ts";
import { Graph } from "../graph/ir/graph.ts";
import { Model } from "../graph/ir/model.ts";
import { isTopologicallySorted, toposortGraph } from "../graph/ir/toposort.ts";
import { tensorType } from "../graph/ir/types.ts";
import { verifyModel } from "../graph/ir/verifier.ts";
import { loadModelFromBytes } from "../graph/onnx/load.ts";
import { cycle, handmadeModel, reversedChain } from "./helpers/handmade-models.ts";
import { expectBitEqual, runOrt } from "./helpers/ort-parity.ts";

const F = DataType.FLOAT;
const codes = (m: Model) => verifyModel(m).map((d) => d.code);
const ops = (g: Graph) => g.nodeArray().map((n) => n.name || n.op);

describe("toposort", () => {
  it("sorts a graph loaded out of order, which then runs as before", async () => {
    const model = loadModelFromBytes(handmadeModel(reversedChain));
    expect(isTopologicallySorted(model.graph)).toBe(false);
    expect(toposortGraph(model.graph)).toBe(true);
    expect(ops(model.graph)).toEqual(["abs", "relu", "neg"]);
    expect(verifyModel(model)).toEqual([]);
    const sorted = handmadeModel([...reversedChain].reverse());
    expectBitEqual(await runOrt(model), await runOrt(sorted));
  });

  it("leaves a sorted graph exactly as it is, even where another order would do", () => {
    const model = new Model();
    const b = new Builder(model.graph);
    const x = b.input("x", F, [2]);
    const a = b.op.Abs(x);
    const n = b.op.Neg(x);
    const e = b.op.Exp(x);
    b.output(b.op.Sum(e, n, a), "y");
    const before = ops(model.graph);
    expect(toposortGraph(model.graph)).toBe(false);
    expect(ops(model.graph)).toEqual(before);
  });

  it("moves only what must move, keeping the relative order of the rest", () => {
    const model = loadModelFromBytes(
      handmadeModel([
        ["first", "Abs", ["x"], ["a"]],
        ["late", "Neg", ["c"], ["b"]],
        ["second", "Exp", ["x"], ["d"]],
        ["producer", "Relu", ["x"], ["c"]],
        ["out", "Sum", ["a", "b", "d"], ["y"]],
      ]),
    );
    toposortGraph(model.graph);
    expect(ops(model.graph)).toEqual(["first", "producer", "late", "second", "out"]);
  });

  it("throws a PipecError naming the nodes on a cycle", () => {
    const model = loadModelFromBytes(handmadeModel(cycle));
    expect(() => toposortGraph(model.graph)).toThrow(PipecError);
    expect(() => toposortGraph(model.graph)).toThrow("graph 'handmade' has a cycle: 'add' (Add) -> 'relu' (Relu) -> 'add' (Add)");
  });

  it("a node that reads its own output is a cycle of one", () => {
    const model = loadModelFromBytes(handmadeModel([["loop", "Add", ["x", "a"], ["a"]], ["out", "Identity", ["a"], ["y"]]]));
    expect(() => toposortGraph(model.graph)).toThrow("graph 'handmade' has a cycle: 'loop' (Add) -> 'loop' (Add)");
  });

  it("orders a node after the producers of values its subgraphs read", () => {
    const model = new Model();
    const g = model.graph;
    const b = new Builder(g);
    const x = b.input("x", F, [2]);
    const sub = new Graph("then", { parent: g });
    const late = b.op.Abs(x); // created first so it can be read, moved after the If below
    const sb = new Builder(sub);
    sb.output(sb.op.Identity(late), undefined, tensorType(F, [2]));
    const ifNode = g.addNode("If", [b.input("c", DataType.BOOL, [])], { attributes: { then_branch: sub, else_branch: sub } });
    g.moveBefore(g.firstNode!, ifNode);
    expect(codes(model)).toEqual(["order"]);
    toposortGraph(g);
    expect(ops(g)).toEqual(["Abs", "If"]);
  });

  it("orders a node after the producer of an outer value its branch returns directly", () => {
    const model = new Model();
    const g = model.graph;
    const b = new Builder(g);
    const x = b.input("x", F, [2]);
    const returned = b.op.Abs(x);
    const sub = new Graph("then", { parent: g });
    sub.addOutput(returned);
    const ifNode = g.addNode("If", [b.input("c", DataType.BOOL, [])], { attributes: { then_branch: sub, else_branch: sub } });
    g.moveBefore(g.firstNode!, ifNode);
    toposortGraph(g);
    expect(ops(g)).toEqual(["Abs", "If"]);
  });
});
