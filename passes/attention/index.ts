import type { Model } from "../../graph/ir/model.ts";
import type { Node } from "../../graph/ir/node.ts";
import { inferShapes } from "../../graph/ir/shape-inference/index.ts";
import { findMatches, traceRule, type Match, type Rule } from "../../graph/rewrite/index.ts";
import { rulePattern } from "../../graph/rewrite/rule.ts";
import type { CanonicalAttentionAttrs } from "./canonical.ts";
import { UNKNOWN_LAYER } from "./canonical-node.ts";
import { decomposedAttentionRule } from "./decomposed.ts";
import { planOf } from "./plan.ts";
import { ATTENTION_RULES } from "./recognize.ts";

export { createLiftAttention, liftAttention, LIFT_ATTENTION } from "./lift.ts";
export { createLowerAttention, lowerAttention, LOWER_ATTENTION } from "./lower.ts";
export { ATTENTION_RULES } from "./recognize.ts";
export { isCanonical, readCanonical } from "./canonical-node.ts";

/** One recognised attention block: the canonical facts lift-attention would give its node. */
export interface AttentionLayer extends CanonicalAttentionAttrs {
  /** The node the block ends at (its root): `MatMul 'matmul_2'`, `com.microsoft::GroupQueryAttention 'l0.attn'`. */
  node: string;
  /** The recognition rule that matched. */
  rule: string;
}

/** A node that looks like attention (a Softmax, a fused attention op) but was not recognised. */
export interface UnrecognisedCandidate {
  node: string;
  /** The tracer's explanation: the furthest any rule got, and what it found there. */
  reason: string;
}

export interface AttentionReport {
  layers: AttentionLayer[];
  /** Blocks per encoding (`source_form`). */
  forms: Record<string, number>;
  unrecognised: UnrecognisedCandidate[];
}

/** The ops a rule other than the decomposed one roots at, by qualified op. */
const FUSED_OPS = new Map<string, Rule>(
  ATTENTION_RULES.filter((r) => r !== decomposedAttentionRule).map((r) => [rootOp(r), r]),
);

/**
 * Finds every attention block in the main graph without changing it (beyond recording the
 * inferred types): per layer its form, head counts, scale, causality, KV-cache names; and for each
 * Softmax or fused attention op that no rule covers, why not.
 */
export function findAttentionBlocks(model: Model): AttentionReport {
  inferShapes(model);
  const order = new Map(model.graph.nodeArray().map((n, i) => [n, i]));
  const matches = ATTENTION_RULES.flatMap((rule) => findMatches(model, rule, { subgraphs: false }).map((m) => ({ rule, m })));
  matches.sort((a, b) => order.get(a.m.root)! - order.get(b.m.root)!);

  const covered = new Set<Node>(matches.flatMap(({ m }) => m.nodes));
  const layers = matches.map(({ rule, m }, i) => layerOf(rule, m, i));
  const forms: Record<string, number> = {};
  for (const l of layers) forms[l.source_form] = (forms[l.source_form] ?? 0) + 1;

  const unrecognised: UnrecognisedCandidate[] = [];
  for (const node of model.graph.nodes()) {
    if (covered.has(node)) continue;
    const rule = node.op === "Softmax" && node.domain === "" ? decomposedAttentionRule : FUSED_OPS.get(node.qualifiedOp);
    if (!rule) continue;
    unrecognised.push({ node: node.describe(), reason: traceRule(model, rule, { near: node }).text });
  }
  return { layers, forms, unrecognised };
}

function layerOf(rule: Rule, m: Match, order: number): AttentionLayer {
  const attrs = planOf(m).attrs;
  return { ...attrs, layer: attrs.layer === UNKNOWN_LAYER ? order : attrs.layer, node: m.root.describe(), rule: rule.name };
}

/** The qualified op a rule's pattern is rooted at (each fused rule has exactly one). */
function rootOp(rule: Rule): string {
  return [...rulePattern(rule).rootKeys][0]!;
}
