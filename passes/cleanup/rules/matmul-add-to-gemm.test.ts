import { toBinary } from "@bufbuild/protobuf";
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { Builder, DataType, Model, PROVENANCE_KEY, modelToProto, type Dim, type Value } from "../../../graph/ir/index.ts";
import { ModelProtoSchema } from "../../../graph/onnx/generated/onnx_pb.ts";
import { applyRules, findMatches, traceRule } from "../../../graph/rewrite/index.ts";
import { matmulAddToGemm } from "./matmul-add-to-gemm.ts";

const F = DataType.FLOAT;

/** Deterministic values in [-1, 1) (mulberry32). */
function seeded(seed: number): (n: number) => Float32Array {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 31 - 1;
  };
  return (n) => Float32Array.from({ length: n }, next);
}

/**
 * Five MatMul+Add pairs: three Gemm candidates (bias [N]; bias first with [1, N] and symbolic M;
 * one fed by another through a Relu) and two that must stay: a 3-D MatMul, and one whose
 * MatMul result is also a graph output.
 */
function buildModel(opset = 17): Model {
  const model = new Model({ opsets: { "": opset } });
  const b = new Builder(model.graph);
  const rand = seeded(7);
  const weight = (K: number, N: number) => b.constant(F, [K, N], rand(K * N), "w");
  const bias = (dims: number[]) => b.constant(F, dims, rand(dims.reduce((a, d) => a * d, 1)), "bias");
  const out = (v: Value, name: string, shape: Dim[]) => b.output(v, name, { kind: "tensor", dtype: F, shape });

  const x1 = b.input("x1", F, [4, 8]);
  out(b.op.Add(b.op.MatMul(x1, weight(8, 6)), bias([6])), "y1", [4, 6]);

  const x2 = b.input("x2", F, ["M", 8]);
  const y2 = b.op.Add(bias([1, 6]), b.op.MatMul(x2, weight(8, 6)));
  const h2 = b.typed(b.op.Relu(y2), F, ["M", 6]);
  out(b.op.Add(b.op.MatMul(h2, weight(6, 5)), bias([5])), "y2", ["M", 5]);

  const x3 = b.input("x3", F, [2, 4, 8]);
  out(b.op.Add(b.op.MatMul(x3, weight(8, 6)), bias([6])), "y3", [2, 4, 6]);

  const x4 = b.input("x4", F, [4, 8]);
  const mm4 = b.op.MatMul(x4, weight(8, 6));
  out(b.op.Add(mm4, bias([6])), "y4", [4, 6]);
  out(mm4, "mm4", [4, 6]);
  return model;
}

const feeds = (): Record<string, ort.Tensor> => {
  const rand = seeded(11);
  return {
    x1: new ort.Tensor("float32", rand(32), [4, 8]),
    x2: new ort.Tensor("float32", rand(24), [3, 8]),
    x3: new ort.Tensor("float32", rand(64), [2, 4, 8]),
    x4: new ort.Tensor("float32", rand(32), [4, 8]),
  };
};

async function run(model: Model): Promise<Record<string, Float32Array>> {
  const session = await ort.InferenceSession.create(toBinary(ModelProtoSchema, modelToProto(model)));
  try {
    const results = await session.run(feeds());
    return Object.fromEntries(Object.entries(results).map(([k, t]) => [k, t.data as Float32Array]));
  } finally {
    await session.release();
  }
}

const ops = (model: Model) => model.graph.nodeArray().map((n) => n.op);

describe("matmul-add-to-gemm", () => {
  it("rewrites exactly the three 2-D pairs and keeps onnxruntime's outputs", async () => {
    const expected = await run(buildModel());
    const model = buildModel();
    const stats = applyRules(model, [matmulAddToGemm]);

    expect(stats.rewrites).toBe(3);
    const gemms = model.graph.nodeArray().filter((n) => n.op === "Gemm");
    expect(gemms).toHaveLength(3);
    for (const g of gemms) expect(g.metadata.get(PROVENANCE_KEY)).toBe("matmul-add-to-gemm");
    expect(ops(model).filter((op) => op === "MatMul")).toHaveLength(2);
    expect(model.graph.outputs.map((v) => v.name)).toEqual(["y1", "y2", "y3", "y4", "mm4"]);

    const actual = await run(model);
    expect(Object.keys(actual).sort()).toEqual(Object.keys(expected).sort());
    for (const [name, want] of Object.entries(expected)) {
      const got = actual[name]!;
      expect(got.length, name).toBe(want.length);
      const worst = Math.max(...want.map((w, i) => Math.abs(w - got[i]!)));
      expect(worst, name).toBeLessThanOrEqual(1e-6);
    }
  });

  it("counts tries, matches and refusals per reason", () => {
    const stats = applyRules(buildModel(), [matmulAddToGemm]);
    const [s] = stats.rules;
    // Sweep 1 tries all five Adds and rewrites three; sweep 2 retries the two that stay.
    expect(stats.iterations).toBe(2);
    expect(s).toMatchObject({ tried: 7, matched: 7, rejected: 4, rewritten: 3 });
    expect(Object.fromEntries(s!.reasons)).toEqual({
      "MatMul input A has rank 3; Gemm needs 2-D": 2,
      "intermediate value used outside the match": 2,
    });
  });

  it("leaves models whose Gemm cannot broadcast the bias alone", () => {
    const stats = applyRules(buildModel(6), [matmulAddToGemm]);
    expect(stats.rewrites).toBe(0);
    // Every pair but the one refused earlier for its escaping MatMul result (the 3-D one included).
    expect(stats.rules[0]!.reasons.get("Gemm in opset 6 does not broadcast its bias")).toBe(4);
  });

  it("finds the places it would rewrite without changing the graph", () => {
    const model = buildModel();
    const before = ops(model);
    const roots = findMatches(model, matmulAddToGemm).map((m) => m.root.output(0).name);
    expect(roots).toEqual(["y1", "Add_1", "y2"]);
    expect(ops(model)).toEqual(before);
  });

  it("explains the near misses", () => {
    const model = buildModel();
    applyRules(model, [matmulAddToGemm]);
    const report = traceRule(model.graph, matmulAddToGemm);
    expect(report.matches).toHaveLength(0);
    expect(report.candidates).toBe(2);
    expect(report.nearMiss?.stage).toBe("check");
    expect(report.nearMiss?.root.output(0).name).toBe("y3");
    expect(report.text).toContain("MatMul input A has rank 3; Gemm needs 2-D");

    const mm4 = model.graph.outputs.find((v) => v.name === "mm4")!.producer!;
    const near = traceRule(model.graph, matmulAddToGemm, { near: mm4 });
    expect(near.candidates).toBe(1);
    expect(near.nearMiss?.stage).toBe("outside-use");
    expect(near.text).toContain("intermediate value %mm4 is used outside the match");
  });
});
