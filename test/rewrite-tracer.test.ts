// "Why doesn't it match?": the tracer reports the candidate that got furthest and what stopped it.
import { describe, expect, it } from "vitest";
import { Builder, DataType, Graph } from "../graph/ir/index.ts";
import { applyRules, traceRule, type Rule } from "../graph/rewrite/index.ts";

const F = DataType.FLOAT;

/** Q.K^T with K in [B, H, S, D] layout. */
const scores: Rule = {
  name: "scores",
  pattern: (p) => p.op.MatMul(p.var("q"), p.op.Transpose(p.var("k"), { perm: [0, 1, 3, 2] })),
  rewrite: (b, m) => b.op.MatMul(m.values.q, m.values.k),
};

function attentionLike(): { g: Graph; b: Builder } {
  const g = new Graph();
  const b = new Builder(g);
  const q = b.input("q", F, [1, 2, 3, 4]);
  const k = b.input("k", F, [1, 3, 2, 4]);
  b.op.MatMul(q, q).producer!.name = "unrelated";
  b.op.MatMul(q, b.op.Transpose(k, { perm: [0, 2, 3, 1] })).producer!.name = "bshd_scores";
  return { g, b };
}

describe("traceRule", () => {
  it("reports the furthest candidate and the attribute that differed, as text and data", () => {
    const { g } = attentionLike();
    const report = traceRule(g, scores);
    expect(report.matches).toEqual([]);
    expect(report.candidates).toBe(2);
    const miss = report.nearMiss!;
    expect(miss.root.name).toBe("bshd_scores");
    expect(miss).toMatchObject({ stage: "structure", at: "the attributes of Transpose", expected: "perm=[0, 1, 3, 2]", found: "perm=[0, 2, 3, 1]" });
    expect(report.text).toBe(
      "rule 'scores' did not match; closest: MatMul 'bshd_scores' -> %MatMul_1 (3 pattern steps matched), " +
        "stopped at the attributes of Transpose: expected perm=[0, 1, 3, 2], found perm=[0, 2, 3, 1] (2 candidates tried)",
    );
  });

  it("names the input where an op was expected and something else was found", () => {
    const { g } = attentionLike();
    const report = traceRule(g, scores, { near: g.nodeArray()[0] });
    expect(report.candidates).toBe(1);
    expect(report.nearMiss).toMatchObject({ at: "input 1 of MatMul", expected: "Transpose", found: "graph input %q" });
  });

  it("passes on a predicate's reason", () => {
    const g = new Graph();
    const b = new Builder(g);
    b.op.Relu(b.input("x", F, [2, 3]));
    const rank4: Rule = {
      name: "rank4-relu",
      pattern: (p) => p.op.Relu(p.var("x", (v) => (v.type?.kind === "tensor" && v.type.shape?.length === 4) || "x is not 4-D")),
      rewrite: (_b, m) => m.values.x,
    };
    expect(traceRule(g, rank4).nearMiss).toMatchObject({ at: "input 0 of Relu", found: "x is not 4-D" });
  });

  it("says where the rule matches, or that there is nothing to root it at", () => {
    const { g, b } = attentionLike();
    expect(traceRule(new Graph(), scores).text).toBe("rule 'scores' did not match: no MatMul node to root the pattern at");
    b.op.MatMul(g.inputs[0]!, b.op.Transpose(g.inputs[1]!, { perm: [0, 1, 3, 2] })).producer!.name = "bhsd_scores";
    const report = traceRule(g, scores);
    expect(report.matches.map((m) => m.root.name)).toEqual(["bhsd_scores"]);
    expect(report.text).toBe("rule 'scores' matches at 1 place: MatMul 'bhsd_scores'");
  });

  it("is available from applyRules for the rules that never fired", () => {
    const { g } = attentionLike();
    const relu: Rule = { name: "relu", pattern: (p) => p.op.Relu(p.var("x")), rewrite: (_b, m) => m.values.x };
    const stats = applyRules(g, [scores, relu], { trace: true });
    expect(stats.rules[0]!.nearMiss?.expected).toBe("perm=[0, 1, 3, 2]");
    expect(stats.rules[1]!.nearMiss).toBeUndefined();
    expect(applyRules(g, [scores]).rules[0]!.nearMiss).toBeUndefined();
  });
});
