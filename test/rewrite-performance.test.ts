// Applying a rule set must scale linearly with the graph: one op-indexed sweep per iteration,
// work per candidate bounded by the pattern size.
import { describe, expect, it } from "vitest";
import { Builder, DataType, Graph } from "../graph/ir/index.ts";
import { applyRules, type Rule } from "../graph/rewrite/index.ts";
import { matmulAddToGemm } from "../passes/cleanup/rules/matmul-add-to-gemm.ts";
import { fastest } from "./helpers/fastest.ts";

const F = DataType.FLOAT;

const rules: Rule[] = [
  { name: "double-neg", pattern: (p) => p.op.Neg(p.op.Neg(p.var("x"))), rewrite: (_b, m) => m.values.x },
  { name: "double-relu", pattern: (p) => p.op.Relu(p.op.Relu(p.var("x"))), rewrite: (b, m) => b.op.Relu(m.values.x) },
  matmulAddToGemm,
];

/** Blocks of five nodes: two rewritable pairs and an Add the Gemm rule tries and rejects. */
function chain(nodes: number): Graph {
  const g = new Graph();
  const b = new Builder(g);
  let h = b.input("x", F, [4, 4]);
  for (let i = 0; i < nodes / 5; i++) h = b.op.Add(b.op.Neg(b.op.Neg(b.op.Relu(b.op.Relu(h)))), h);
  b.output(h);
  return g;
}

/** The fastest of three applications, each to a fresh chain (the rules rewrite it in place). */
function timeApply(nodes: number): { ms: number; rewrites: number; left: number } {
  const graphs = [chain(nodes), chain(nodes), chain(nodes)];
  const { ms, result } = fastest(3, () => {
    const g = graphs.pop()!;
    return { rewrites: applyRules(g, rules).rewrites, left: g.nodeCount };
  });
  return { ms, ...result };
}

describe("rewrite performance", () => {
  it("applies a rule set to a 100k-node graph in time linear in its size", () => {
    timeApply(2_000); // warm up the JIT
    const small = timeApply(10_000).ms;
    const large = timeApply(100_000);
    expect(large.rewrites).toBe(40_000);
    expect(large.left).toBe(40_000);
    // Ten times the nodes: linear is about 10x; a quadratic step would be about 100x.
    expect(large.ms / small, `10k nodes: ${small.toFixed(0)} ms, 100k nodes: ${large.ms.toFixed(0)} ms`).toBeLessThan(25);
  });
});
