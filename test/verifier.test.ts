import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { PipecError } from "../compiler/errors.ts";
import { Builder } from "../compiler/ir/builder.ts";
import { DataType } from "../compiler/ir/dtype.ts";
import { Graph } from "../compiler/ir/graph.ts";
import { Model } from "../compiler/ir/model.ts";
import { Tensor } from "../compiler/ir/tensor.ts";
import { isTopologicallySorted, toposortGraph } from "../compiler/ir/toposort.ts";
import { tensorType } from "../compiler/ir/types.ts";
import { Value } from "../compiler/ir/value.ts";
import { verifyModel } from "../compiler/ir/verifier.ts";
import { loadModel, loadModelFromBytes } from "../compiler/onnx/load.ts";
import { cycle, handmadeModel, reversedChain } from "./helpers/handmade-models.ts";
import { HAVE_SHARED, SHARED_FIXTURES, sharedOnnxFiles, SKIP_SHARED_REASON } from "./helpers/fixtures.ts";
import { expectBitEqual, runOrt } from "./helpers/ort-parity.ts";

const F = DataType.FLOAT;
const codes = (m: Model) => verifyModel(m).map((d) => d.code);
const ops = (g: Graph) => g.nodeArray().map((n) => n.name || n.op);

function chain(): { model: Model; b: Builder; x: Value } {
  const model = new Model();
  const b = new Builder(model.graph);
  const x = b.input("x", F, [2]);
  b.output(b.op.Neg(b.op.Relu(x)), "y", tensorType(F, [2]));
  return { model, b, x };
}

describe("verifyModel", () => {
  it("accepts a well-formed model with a subgraph reading the outer scope", () => {
    const { model, x } = chain();
    const g = model.graph;
    const branch = (name: string) => {
      const sub = new Graph(name, { parent: g });
      const sb = new Builder(sub);
      sb.output(sb.op.Identity(x), undefined, tensorType(F, [2]));
      return sub;
    };
    g.addNode("If", [g.addInput("c", DataType.BOOL, [])], { attributes: { then_branch: branch("t"), else_branch: branch("e") } });
    expect(verifyModel(model)).toEqual([]);
  });

  const reference = join(import.meta.dirname, "fixtures", "reference");
  const exports = readdirSync(reference).filter((name) => existsSync(join(reference, name, "model.onnx")));
  it.each(exports)("finds nothing wrong in the reference export %s", (name) => {
    expect(verifyModel(loadModel(join(reference, name, "model.onnx")))).toEqual([]);
  });

  describe.skipIf(!HAVE_SHARED)(`shared fixtures (${HAVE_SHARED ? "present" : SKIP_SHARED_REASON})`, () => {
    it.each(sharedOnnxFiles())("finds nothing wrong in %s", (file) => {
      expect(verifyModel(loadModel(join(SHARED_FIXTURES, file)))).toEqual([]);
    });
  });

  it("reports nodes out of topological order", () => {
    const model = loadModelFromBytes(handmadeModel(reversedChain));
    expect(codes(model)).toEqual(["order", "order"]);
    expect(verifyModel(model)[0]!.message).toBe("graph 'handmade': Neg 'neg' comes before Relu 'relu', which produces a value it reads");
  });

  it("reports a cycle naming its nodes (and not the order errors it implies)", () => {
    const diags = verifyModel(loadModelFromBytes(handmadeModel(cycle)));
    expect(diags.map((d) => d.message)).toEqual(["graph 'handmade' has a cycle: 'add' (Add) -> 'relu' (Relu) -> 'add' (Add)"]);
  });

  it("reports an input defined in no enclosing scope", () => {
    const { model, b } = chain();
    const stranger = new Graph("elsewhere").addInput("z", F, [2]);
    b.op.Abs(stranger);
    expect(verifyModel(model).map((d) => d.message)).toEqual(["graph 'main': Abs input 0 reads 'z', which is not defined in scope"]);
  });

  it("reports an outer node reading a value defined inside a subgraph", () => {
    const { model, b, x } = chain();
    const sub = new Graph("body", { parent: model.graph });
    const inner = new Builder(sub).op.Abs(x);
    b.op.Neg(inner);
    expect(codes(model)).toContain("undefined-input");
  });

  it("reports a domain the model does not import", () => {
    const { model, b, x } = chain();
    b.domain("com.example").Fancy(x);
    expect(verifyModel(model).map((d) => d.message)).toEqual(["graph 'main': com.example::Fancy uses domain 'com.example', which the model does not import"]);
    model.requireOpset("com.example", 1);
    expect(verifyModel(model)).toEqual([]);
  });

  it("reports a value assigned twice", () => {
    const { model } = chain();
    const relu = model.graph.firstNode!;
    model.graph.attachOutput(relu, new Value(model.graph, "x"), 1);
    expect(codes(model)).toEqual(["duplicate-name"]);
  });

  it("reports an initializer whose tensor disagrees with its declared type", () => {
    const { model, b, x } = chain();
    const w = model.graph.addInitializer(Tensor.fromArray("w", F, [2], Float32Array.of(1, 2)));
    b.op.Add(x, w);
    w.type = tensorType(DataType.INT64, [3]);
    expect(verifyModel(model).map((d) => d.message)).toEqual(["graph 'main': initializer 'w' is declared int64[3] but holds float[2]"]);
  });

  it("reports raw data whose size does not match the shape", () => {
    const { model } = chain();
    model.graph.addInitializer(Tensor.fromBytes("w", F, [3], new Uint8Array(8)));
    expect(verifyModel(model).map((d) => d.code)).toEqual(["initializer-size"]);
  });
});

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
});
