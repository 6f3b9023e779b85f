import { SPECTR_DRAFT_LENGTH, SPECTR_DRAFTS } from "../../runtime/speculative/spectr-decoding.ts";
import type { MethodDefinition } from "./method.ts";
import { TREE_ATTENTION_MASK } from "./support-passes.ts";

/**
 * SpecTr samples k drafts i.i.d. from a draft model (the driver opens it), merges them into a
 * trie and verifies it in one call with the K-SEQ rule, so the target gets tree_attention_mask.
 * Lossless in distribution: the tokens are distributed as sampling from the target alone.
 */
export const SPECTR: MethodDefinition = {
  slot: "speculate",
  name: "spectr",
  doc: "SpecTr: k drafts sampled i.i.d. from a draft model, verified together by the K-SEQ rule (lossless in distribution)",
  lossy: false,
  params: {
    model: { type: { kind: "model" }, doc: "the draft model, declared with `model`" },
    drafts: { type: { kind: "int", min: 1 }, default: SPECTR_DRAFTS, doc: "drafts sampled per step (k)" },
    draft_length: { type: { kind: "int", min: 1 }, default: SPECTR_DRAFT_LENGTH, doc: "tokens per draft (L)" },
  },
  lowering: { level: "graph", support: { name: TREE_ATTENTION_MASK, options: () => ({}), onAttention: true } },
  runtime: { speculation: (p) => ({ kind: "spectr", model: p["model"] as string, drafts: p["drafts"] as number, draftLength: p["draft_length"] as number }) },
  decoding: { needs: "sampled", why: "it samples k drafts i.i.d., and with greedy decoding they would all be one draft" },
};
