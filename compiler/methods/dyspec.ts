import { RECYCLE_TOP_K } from "../../runtime/speculative/adjacency-matrix.ts";
import { DYSPEC_BUDGET } from "../../runtime/speculative/dyspec-draft.ts";
import type { MethodDefinition, Params, RuntimeSpeculation } from "./method.ts";
import { countOrAuto } from "./params.ts";
import { TREE_ATTENTION_MASK } from "./support-passes.ts";

/** The `source` that grows trees from Token Recycling's successor table instead of a draft model. */
const RECYCLE_SOURCE = "recycle";

/**
 * DySpec grows each step's draft tree by draft probability (runtime/speculative/dyspec.ts) and
 * verifies it in one call, so the target gets tree_attention_mask. Its probabilities come from
 * Token Recycling's successor table (the runtime's TokenRecycling with `grow: "dyspec"`) or from
 * a draft model the driver opens (DySpecDraft). Greedy: every kept token is the target's argmax.
 */
export const DYSPEC: MethodDefinition = {
  slot: "speculate",
  name: "dyspec",
  doc: "DySpec: a draft tree grown greedily by draft probability, from Token Recycling's table or a draft model",
  lossy: false,
  params: {
    source: { type: { kind: "model", keywords: [RECYCLE_SOURCE] }, default: RECYCLE_SOURCE, doc: "where draft probabilities come from: recycle (Token Recycling's successor table) or a declared draft model" },
    nodes: { type: { kind: "auto-or-int" }, default: "auto", doc: `draft nodes per tree; auto: with recycle the cost model picks each step's size up to the template's, with a draft model ${DYSPEC_BUDGET}` },
  },
  lowering: { level: "graph", support: { name: TREE_ATTENTION_MASK, options: () => ({}), onAttention: true } },
  runtime: { speculation: (p) => dyspecSpeculation(p) },
  decoding: { needs: "greedy", why: "its trees are verified against the target's argmax" },
  // From the table: the top-k it records (its first id is the argmax); from a draft model: the argmax.
  greedyIds: (p) => (p["source"] === RECYCLE_SOURCE ? { k: RECYCLE_TOP_K, argmax: false } : { k: 0, argmax: true }),
};

function dyspecSpeculation(p: Params): RuntimeSpeculation {
  const nodes = countOrAuto(p["nodes"]!);
  if (p["source"] === RECYCLE_SOURCE) return { kind: "recycle", topK: RECYCLE_TOP_K, tree: nodes, grow: "dyspec" };
  return { kind: "dyspec", model: p["source"] as string, budget: nodes === "auto" ? DYSPEC_BUDGET : nodes };
}
