import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { Builder } from "../graph/ir/builder.ts";
import { DataType } from "../graph/ir/dtype.ts";
import { Graph } from "../graph/ir/graph.ts";
import { Model } from "../graph/ir/model.ts";
import { Tensor } from "../graph/ir/tensor.ts";
import { tensorType } from "../graph/ir/types.ts";
import { Value } from "../graph/ir/value.ts";
import { verifyModel } from "../graph/ir/verifier.ts";
import { TensorProtoSchema } from "../graph/onnx/generated/onnx_pb.ts";
import { loadModel, loadModelFromBytes } from "../graph/onnx/load.ts";
import { cycle, handmadeModel, reversedChain } from "./helpers/handmade-models.ts";
import { HAVE_SHARED, SHARED_FIXTURES, sharedOnnxFiles, SKIP_SHARED_REASON } from "./helpers/fixtures.ts";

const F = DataType.FLOAT;
const codes = (m: Model) => verifyModel(m).map((d) => d.code);

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

  it("reports an initializer that contradicts the graph input declaring it, once", () => {
    const w = create(TensorProtoSchema, { name: "x", dataType: DataType.INT64, dims: [3n], int64Data: [1n, 2n, 3n] });
    const model = loadModelFromBytes(handmadeModel([["r", "Relu", ["x"], ["y"]]], { initializers: [w] }));
    expect(verifyModel(model).map((d) => d.message)).toEqual(["graph 'handmade': initializer 'x' is declared float[2] but holds int64[3]"]);
  });

  it("reports raw data whose size does not match the shape", () => {
    const { model } = chain();
    model.graph.addInitializer(Tensor.fromBytes("w", F, [3], new Uint8Array(8)));
    expect(verifyModel(model).map((d) => d.code)).toEqual(["initializer-size"]);
  });
});
