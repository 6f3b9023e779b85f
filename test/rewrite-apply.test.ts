// applyRules and rulesPass: what a rewrite leaves behind (names, provenance, dead nodes), how
// far it iterates, subgraphs, and that onnxruntime computes the same results afterwards.
import { toBinary } from "@bufbuild/protobuf";
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { Builder, DataType, Graph, Model, PROVENANCE_KEY, modelToProto, tensorType } from "../graph/ir/index.ts";
import { ModelProtoSchema } from "../graph/onnx/generated/onnx_pb.ts";
import { applyRules, formatStats, rulesPass, type Rule } from "../graph/rewrite/index.ts";

const F = DataType.FLOAT;

async function run(model: Model, feeds: Record<string, ort.Tensor>): Promise<Record<string, number[]>> {
  const session = await ort.InferenceSession.create(toBinary(ModelProtoSchema, modelToProto(model)));
  try {
    const out = await session.run(feeds);
    return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, [...(t.data as Float32Array)]]));
  } finally {
    await session.release();
  }
}

const doubleNeg: Rule = {
  name: "double-neg",
  pattern: (p) => p.op.Neg(p.op.Neg(p.var("x"))),
  rewrite: (_b, m) => m.values.x,
};

/** Relu(Relu(x)) -> Relu(x): the replacement is a node the rule creates. */
const doubleRelu: Rule = {
  name: "double-relu",
  pattern: (p) => p.op.Relu(p.op.Relu(p.var("x"))),
  rewrite: (b, m) => b.op.Relu(m.values.x),
};

const ops = (g: Graph) => g.nodeArray().map((n) => n.op);

describe("applyRules", () => {
  it("gives a created replacement the old value's name and type, and stamps its nodes", async () => {
    const model = new Model({ opsets: { "": 17 } });
    const b = new Builder(model.graph);
    const x = b.input("x", F, [4]);
    let h = x;
    for (let i = 0; i < 4; i++) h = b.op.Relu(h);
    b.output(b.op.Neg(h), "y", tensorType(F, [4]));
    const inner = model.graph.nodeArray()[3]!.output(0);
    inner.type = tensorType(F, [4]);
    model.graph.valueInfo.add(inner);

    const stats = applyRules(model, [doubleRelu]);
    expect(stats.rewrites).toBe(3);
    expect(ops(model.graph)).toEqual(["Relu", "Neg"]);
    const relu = model.graph.firstNode!;
    expect(relu.metadata.get(PROVENANCE_KEY)).toBe("double-relu");
    // The surviving Relu produces the value the last original Relu did, with its recorded type.
    expect(relu.output(0)).toBe(inner);
    expect([...model.graph.valueInfo]).toEqual([inner]);
    const feeds = { x: new ort.Tensor("float32", Float32Array.of(-2, -0.5, 0.5, 2), [4]) };
    expect((await run(model, feeds)).y).toEqual([-0, -0, -0.5, -2]);
  });

  it("keeps a graph output's name when the replacement is an existing value", async () => {
    const model = new Model({ opsets: { "": 17 } });
    const b = new Builder(model.graph);
    const x = b.input("x", F, [3]);
    b.output(b.op.Neg(b.op.Neg(b.op.Neg(b.op.Neg(x)))), "y", tensorType(F, [3]));
    const stats = applyRules(model, [doubleNeg]);
    expect(stats.rewrites).toBe(2);
    expect(ops(model.graph)).toEqual(["Identity"]);
    expect(model.graph.outputs.map((v) => v.name)).toEqual(["y"]);
    expect(model.graph.firstNode!.metadata.get(PROVENANCE_KEY)).toBe("double-neg");
    const feeds = { x: new ort.Tensor("float32", Float32Array.of(1, -2, 3), [3]) };
    expect((await run(model, feeds)).y).toEqual([1, -2, 3]);
  });

  it("replaces every output of a multi-output root", async () => {
    const model = new Model({ opsets: { "": 17 } });
    const b = new Builder(model.graph);
    const x = b.input("x", F, [5]);
    const [values, indices] = b.node("TopK", [x, b.int64([2])], { outputs: 2 }).outputs;
    b.output(b.op.Neg(values!), "v", tensorType(F, [2]));
    b.output(indices!, "i", tensorType(DataType.INT64, [2]));
    const explicitAxis: Rule = {
      name: "topk-explicit-axis",
      pattern: (p) => p.node("TopK", [p.var("x"), p.constant("k")], { outputs: 2, attributes: { axis: (a) => a === undefined } }).outputs[0]!,
      rewrite: (b, m) => b.node("TopK", [m.values.x, m.values.k], { outputs: 2, attributes: { axis: -1 } }).outputs,
    };
    const feeds = { x: new ort.Tensor("float32", Float32Array.of(3, 9, 1, 7, 5), [5]) };
    const before = await run(model, feeds);
    expect(applyRules(model, [explicitAxis]).rewrites).toBe(1);
    const topk = model.graph.nodeArray().filter((n) => n.op === "TopK");
    expect(topk.map((n) => n.attrInt("axis"))).toEqual([-1]);
    expect(topk[0]!.output(1)).toBe(indices);
    const after = await run(model, feeds);
    expect(after).toEqual(before);
    expect(after.v).toEqual([-9, -7]);
  });

  it("lets one created value replace two outputs", () => {
    const g = new Graph();
    const b = new Builder(g);
    const x = b.input("x", F, [3]);
    const [first, second] = b.node("Twins", [x], { domain: "test", outputs: 2 }).outputs;
    b.output(b.op.Add(first!, second!), "y");
    const untwin: Rule = {
      name: "untwin",
      pattern: (p) => p.node("Twins", [p.var("x")], { domain: "test", outputs: 2 }).outputs[0]!,
      rewrite: (b, m) => {
        const r = b.op.Relu(m.values.x);
        return [r, r];
      },
    };
    expect(applyRules(g, [untwin]).rewrites).toBe(1);
    expect(ops(g)).toEqual(["Relu", "Add"]);
    const add = g.lastNode!;
    expect(add.inputs).toEqual([first, first]);
    expect(first!.producer).toBe(g.firstNode);
  });

  it("leaves a match alone when an intermediate value is read elsewhere", () => {
    const g = new Graph();
    const b = new Builder(g);
    const inner = b.op.Neg(b.input("x", F, [3]));
    b.output(b.op.Neg(inner));
    b.output(b.op.Relu(inner));
    const stats = applyRules(g, [doubleNeg]);
    expect(stats.rewrites).toBe(0);
    expect(ops(g)).toEqual(["Neg", "Neg", "Relu"]);
    expect(stats.rules[0]).toMatchObject({ tried: 2, matched: 1, rejected: 1 });
  });

  it("counts check refusals by reason, false included", () => {
    const g = new Graph();
    const b = new Builder(g);
    b.output(b.op.Neg(b.op.Neg(b.input("x", F, [3]))));
    b.output(b.op.Neg(b.op.Neg(b.input("z", F, [3, 3]))));
    const rankOne: Rule = { ...doubleNeg, name: "rank-one", check: (_ctx, m) => m.values.x!.name === "x" || "not x" };
    const never: Rule = { ...doubleNeg, name: "never", check: () => false };
    const stats = applyRules(g, [never, rankOne]);
    expect(stats.rewrites).toBe(1);
    expect(Object.fromEntries(stats.rules[0]!.reasons)).toEqual({ "check returned false": 3 });
    expect(Object.fromEntries(stats.rules[1]!.reasons)).toEqual({ "not x": 2 });
    const table = formatStats(stats);
    expect(table).toMatch(/^rule\s+tried\s+matched\s+rejected\s+rewritten\s+ms$/m);
    // Every Neg is a candidate root; each sweep, `never` refuses the outer Negs before `rank-one` sees them.
    expect(table).toMatch(/^never\s+6\s+3\s+3\s+0\s+\d+\.\d$/m);
    expect(table).toMatch(/^rank-one\s+6\s+3\s+2\s+1\s+\d+\.\d$/m);
    expect(table).toContain("    2 x not x");
    expect(table.split("\n").at(-1)).toBe("1 rewrite in 2 iterations");
  });

  it("stops after maxIterations when a rule keeps matching its own output", () => {
    const g = new Graph();
    const b = new Builder(g);
    b.output(b.op.Relu(b.input("x", F, [3])));
    const restless: Rule = { name: "restless", pattern: (p) => p.op.Relu(p.var("x")), rewrite: (b, m) => b.op.Relu(m.values.x) };
    const stats = applyRules(g, [restless], { maxIterations: 5 });
    expect([stats.iterations, stats.rewrites]).toEqual([5, 5]);
    expect(ops(g)).toEqual(["Relu"]);
  });

  it("rewrites inside If branches unless told not to", async () => {
    const build = () => {
      const model = new Model({ opsets: { "": 17 } });
      const g = model.graph;
      const b = new Builder(g);
      const x = b.input("x", F, [2]);
      const cond = b.input("cond", DataType.BOOL, []);
      const branch = (name: string, ops: "Neg" | "Relu") => {
        const sub = new Graph(name, { parent: g });
        const sb = new Builder(sub);
        sb.output(sb.op[ops](sb.op[ops](x)), `${name}_out`, tensorType(F, [2]));
        return sub;
      };
      b.output(b.node("If", [cond], { attributes: { then_branch: branch("then", "Neg"), else_branch: branch("else", "Relu") } }).output(0), "y", tensorType(F, [2]));
      return model;
    };
    const subOps = (m: Model) => m.graph.firstNode!.subgraphs().map(ops);

    const untouched = build();
    expect(applyRules(untouched, [doubleNeg, doubleRelu], { subgraphs: false }).rewrites).toBe(0);

    const model = build();
    expect(applyRules(model, [doubleNeg, doubleRelu]).rewrites).toBe(2);
    expect(subOps(model)).toEqual([["Identity"], ["Relu"]]);
    const x = new ort.Tensor("float32", Float32Array.of(-1, 2), [2]);
    for (const c of [true, false]) {
      const feeds = { x, cond: new ort.Tensor("bool", Uint8Array.of(c ? 1 : 0), []) };
      expect(await run(model, feeds)).toEqual(await run(build(), feeds));
    }
  });

  it("reports a rule that returns no value for a used output", () => {
    const g = new Graph();
    const b = new Builder(g);
    b.output(b.op.Neg(b.op.Neg(b.input("x", F, [3]))));
    const broken: Rule = { ...doubleNeg, name: "broken", rewrite: () => [] };
    expect(() => applyRules(g, [broken])).toThrow("rule 'broken' returned no replacement for");
  });
});

describe("rulesPass", () => {
  it("runs a rule set as a pass and reports its counters and notes", () => {
    const model = new Model();
    const b = new Builder(model.graph);
    const x = b.input("x", F, [3]);
    b.output(b.op.Neg(b.op.Neg(x)));
    b.output(b.op.Exp(x));
    const pass = rulesPass("simplify", "Removes double negations", [doubleNeg, doubleRelu]);
    const notes: string[] = [];
    const result = pass.run(model, { options: { trace: true }, note: (m) => notes.push(m) });
    expect(result).toEqual({ changed: true, stats: { rewrites: 1, "double-neg.rewritten": 1, "double-relu.rewritten": 0 } });
    expect(notes).toEqual(["double-neg: 1 rewrite", "rule 'double-relu' did not match: no node to root its pattern at"]);
    expect(pass.run(model, { options: {}, note: () => {} }).changed).toBe(false);
  });
});
