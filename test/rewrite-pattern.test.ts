// The pattern language: what each construct matches and binds, checked with match-only queries.
import { describe, expect, it } from "vitest";
import { PipecError } from "../graph/errors.ts";
import { Builder, DataType, Graph, Tensor, float, type Value } from "../graph/ir/index.ts";
import { findMatches, type PatternFn } from "../graph/rewrite/index.ts";

const F = DataType.FLOAT;

function graph(): { g: Graph; b: Builder; x: Value; y: Value } {
  const g = new Graph();
  const b = new Builder(g);
  return { g, b, x: b.input("x", F, [2, 3]), y: b.input("y", F, [2, 3]) };
}

const roots = (g: Graph, pattern: PatternFn) => findMatches(g, pattern).map((m) => m.root.output(0).name);

describe("rewrite patterns", () => {
  it("binds variables, and a name used twice must bind the same value", () => {
    const { g, b, x, y } = graph();
    b.op.Mul(x, x).name = "square";
    const mixed = b.op.Mul(x, y);
    const [m, ...rest] = findMatches(g, (p) => p.op.Mul(p.var("a"), p.var("a")));
    expect(rest).toEqual([]);
    expect(m!.values).toEqual({ a: x });
    expect(findMatches(g, (p) => p.op.Mul(p.var("a"), p.var("b"))).map((m) => m.values.b)).toEqual([x, mixed.producer!.input(1)]);
  });

  it("matches constants: initializers and Constant outputs, not computed values or overridable inputs", () => {
    const { g, b, x } = graph();
    const init = b.float32([1, 2, 3]);
    const constNode = b.node("Constant", [], { attributes: { value: Tensor.fromArray("c", F, [3], Float32Array.of(4, 5, 6)) } }).output(0);
    const overridable = g.addInitializer(Tensor.fromArray("o", F, [3], Float32Array.of(0, 0, 0)));
    g.inputs.push(overridable); // IR < 4 style: an initializer that is also a graph input
    b.op.Add(x, init);
    b.op.Add(x, constNode);
    b.op.Add(x, overridable);
    b.op.Add(x, b.op.Relu(x));
    const matches = findMatches(g, (p) => p.op.Add(p.var("x"), p.constant("c")));
    expect(matches.map((m) => m.values.c)).toEqual([init, constNode]);
    expect([...matches[1]!.tensor("c").toArray()]).toEqual([4, 5, 6]);
    const big = findMatches(g, (p) => p.op.Add(p.var("x"), p.constant("c", (t) => t.toArray()[0]! > 2 || "first element too small")));
    expect(big.map((m) => m.values.c)).toEqual([constNode]);
  });

  it("applies value predicates", () => {
    const { g, b, x } = graph();
    const z = b.input("z", F, [2, 3, 4]);
    b.op.Relu(x);
    b.op.Relu(z);
    const rank = (v: Value) => (v.type?.kind === "tensor" ? v.type.shape?.length : undefined);
    expect(findMatches(g, (p) => p.op.Relu(p.var("v", (v) => rank(v) === 3))).map((m) => m.values.v)).toEqual([z]);
  });

  it("distinguishes domains", () => {
    const { g, b, x, y } = graph();
    b.domain("com.microsoft").FusedMatMul(x, y).producer!.name = "ms";
    b.node("FusedMatMul", [x, y]).name = "default";
    const names = (pattern: PatternFn) => findMatches(g, pattern).map((m) => m.root.name);
    expect(names((p) => p.domain("com.microsoft").FusedMatMul(p.var("a"), p.var("b")))).toEqual(["ms"]);
    expect(names((p) => p.op.FusedMatMul(p.var("a"), p.var("b")))).toEqual(["default"]);
  });

  it("constrains the attributes it names and allows any others", () => {
    const { g, b, x } = graph();
    b.op.Transpose(x, { perm: [1, 0] });
    b.op.Transpose(x, { perm: [0, 1] });
    b.op.LeakyRelu(x, { alpha: 0.1 });
    b.op.LeakyRelu(x, { alpha: 0.2 });
    b.op.Softmax(x, { axis: -1 });
    const transposed = roots(g, (p) => p.op.Transpose(p.var("x"), { perm: [1, 0] }));
    expect(transposed).toEqual(["Transpose"]);
    // ONNX stores floats as float32: 0.1 written by an exporter must still equal 0.1.
    expect(roots(g, (p) => p.op.LeakyRelu(p.var("x"), { alpha: float(0.1) }))).toEqual(["LeakyRelu"]);
    expect(roots(g, (p) => p.op.LeakyRelu(p.var("x"), { alpha: (a) => typeof a === "number" && a > 0.15 }))).toEqual(["LeakyRelu_1"]);
    expect(roots(g, (p) => p.op.Softmax(p.var("x")))).toEqual(["Softmax"]);
    expect(roots(g, (p) => p.op.Softmax(p.var("x"), { axis: 1 }))).toEqual([]);
  });

  it("records which tagged alternative matched", () => {
    const { g, b, x } = graph();
    const k = b.input("k", F, [1, 2, 3, 4]);
    b.op.MatMul(x, b.op.Transpose(k, { perm: [0, 2, 3, 1] })).producer!.name = "from_bshd";
    b.op.MatMul(x, b.op.Transpose(k, { perm: [0, 1, 3, 2] })).producer!.name = "from_bhsd";
    const matches = findMatches(g, (p) =>
      p.op.MatMul(
        p.var("q"),
        p.oneOf("layout", {
          bshd: p.op.Transpose(p.var("k"), { perm: [0, 2, 3, 1] }),
          bhsd: p.op.Transpose(p.var("k"), { perm: [0, 1, 3, 2] }),
        }).as("kT"),
      ),
    );
    expect(matches.map((m) => [m.root.name, m.tags.layout])).toEqual([
      ["from_bshd", "bshd"],
      ["from_bhsd", "bhsd"],
    ]);
    expect(matches[0]!.values.kT).toBe(matches[0]!.root.input(1));
  });

  it("commutes on request, per op", () => {
    const { g, b, x, y } = graph();
    b.op.Add(b.op.Relu(y), b.op.Neg(b.op.Relu(x))).producer!.name = "swapped";
    b.op.Add(b.op.Neg(b.op.Relu(x)), b.op.Relu(y)).producer!.name = "straight";
    const names = (pattern: PatternFn) => findMatches(g, pattern).map((m) => m.root.name);
    expect(names((p) => p.op.Add(p.op.Neg(p.op.Relu(p.var("a"))), p.op.Relu(p.var("b"))))).toEqual(["straight"]);
    const both = findMatches(g, (p) => p.op.Add(p.op.Neg(p.op.Relu(p.var("a"))), p.op.Relu(p.var("b"))).commute());
    expect(both.map((m) => [m.root.name, m.values.a, m.values.b])).toEqual([
      ["swapped", x, y],
      ["straight", x, y],
    ]);
  });

  it("revisits an inner input order when a later sibling input fails", () => {
    const { g, b, x, y } = graph();
    b.op.Sub(b.op.Mul(y, x), x);
    // The Mul's first order binds a = y, which only fails at the Sub's second input; a matcher
    // that settled each commutative op locally would miss this.
    const [m, ...rest] = findMatches(g, (p) => p.op.Sub(p.op.Mul(p.var("a"), p.var("b")).commute(), p.var("a")));
    expect(rest).toEqual([]);
    expect([m!.values.a, m!.values.b]).toEqual([x, y]);
  });

  it("commutes every commutative op of a rule with commute: true", () => {
    const { g, b, x, y } = graph();
    b.op.Add(y, b.op.Mul(y, b.op.Relu(x)));
    const rule = { name: "r", commute: true, pattern: ((p) => p.op.Add(p.op.Mul(p.op.Relu(p.var("a")), p.var("b")), p.var("b"))) as PatternFn, rewrite: () => x };
    expect(findMatches(g, rule)).toHaveLength(1);
    expect(findMatches(g, { ...rule, commute: false })).toHaveLength(0);
  });

  it("binds intermediate values with .as", () => {
    const { g, b, x } = graph();
    const probs = b.op.Softmax(b.op.Mul(x, b.float32(0.5)), { axis: -1 });
    const out = b.op.MatMul(probs, x);
    const [m] = findMatches(g, (p) => p.op.MatMul(p.op.Softmax(p.op.Mul(p.var("s"), p.constant("scale"))).as("probs"), p.var("v")));
    expect(m!.values.probs).toBe(probs);
    expect(m!.root).toBe(out.producer);
    expect(m!.nodes.map((n) => n.op)).toEqual(["MatMul", "Softmax", "Mul"]);
  });

  it("matches several outputs of one op as one node", () => {
    const { g, b, x } = graph();
    const [values, indices] = b.node("TopK", [x, b.int64([2])], { outputs: 2 }).outputs;
    b.op.Add(values!, b.op.Cast(indices!, { to: F }));
    b.op.Add(values!, values!); // output 0 twice: no match for a pattern needing output 1
    const matches = findMatches(g, (p) => {
      const topk = p.node("TopK", [p.var("x"), p.constant("k")], { outputs: 2 });
      return p.op.Add(topk.outputs[0]!, p.op.Cast(topk.outputs[1]!));
    });
    expect(matches).toHaveLength(1);
    expect(matches[0]!.nodes.map((n) => n.op)).toEqual(["Add", "TopK", "Cast"]);
  });

  it("matches omitted optional inputs and, on request, extra inputs", () => {
    const { g, b, x } = graph();
    b.node("Clip", [x, undefined, b.float32(6)]).name = "relu6";
    b.node("Clip", [x, undefined, undefined]).name = "bare";
    const names = (pattern: PatternFn) => findMatches(g, pattern).map((m) => m.root.name);
    expect(names((p) => p.op.Clip(p.var("x"), undefined, p.constant("max")))).toEqual(["relu6"]);
    expect(names((p) => p.op.Clip(p.var("x")))).toEqual(["bare"]);
    expect(names((p) => p.node("Clip", [p.var("x")], { otherInputs: true }).outputs[0]!)).toEqual(["relu6", "bare"]);
  });

  it("refuses a pattern that does not end in an operator, with one clear line", () => {
    const { g } = graph();
    const attempt = () => findMatches(g, (p) => p.var("x"));
    expect(attempt).toThrow(PipecError);
    expect(attempt).toThrow('pattern: the pattern must end in an operator, not p.var("x")');
  });
});
