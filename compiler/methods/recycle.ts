import type { MethodDefinition } from "./method.ts";
import { TREE_ATTENTION_MASK } from "./support-passes.ts";

/**
 * Token Recycling verifies a token tree in one call: the target gets tree_attention_mask and
 * position_ids inputs; the runtime's TokenRecycling drafts and verifies.
 */
export const RECYCLE: MethodDefinition = {
  slot: "speculate",
  name: "recycle",
  doc: "Token Recycling: an adjacency matrix of past top-k candidates drafts a token tree",
  lossy: false,
  params: {
    top_k: { type: { kind: "int", min: 1 }, default: 8, doc: "candidates stored per token" },
    tree: { type: { kind: "auto-or-int" }, default: "auto", doc: "draft tree size, or auto for the paper's static tree" },
  },
  lowering: { level: "graph", support: { name: TREE_ATTENTION_MASK, options: () => ({}), onAttention: true } },
  runtime: { speculation: (p) => ({ kind: "recycle", topK: p["top_k"] as number, tree: p["tree"] as number | "auto" }) },
  decoding: { needs: "greedy", why: "its trees are verified against the target's argmax" },
  // Its top-k already starts with the argmax: a second kernel would run on every call for nothing.
  greedyIds: (p) => ({ k: p["top_k"] as number, argmax: false }),
};
