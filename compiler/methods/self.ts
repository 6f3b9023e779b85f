import { printParam } from "../../dsl/print.ts";
import { SELF_DRAFT } from "./support-passes.ts";
import { createSelfDraft } from "../../passes/speculative/self-draft.ts";
import { ADAPTIVE_DEFAULTS } from "../../runtime/speculative/draft-length.ts";
import type { MethodDefinition } from "./method.ts";

/**
 * Self-speculation is draft-model speculation whose draft the self-draft pass derives from the
 * stage's model: a second model (the same source, the skipped layers bypassed) joins the
 * pipeline, and the request becomes `draft(model: <it>, k)`.
 */
export const SELF: MethodDefinition = {
  slot: "speculate",
  name: "self",
  doc: "self-speculation: the target model with some layers skipped drafts for itself",
  lossy: false,
  params: {
    skip: { type: { kind: "layers" }, doc: "layers skipped while drafting" },
    k: { type: { kind: "draft-length", adaptive: ADAPTIVE_DEFAULTS }, default: { adaptive: ADAPTIVE_DEFAULTS }, doc: "tokens drafted per step, or adaptive(threshold, min, max)" },
  },
  lowering: {
    level: "draft-model",
    derive: { name: SELF_DRAFT, create: (p) => createSelfDraft(p["skip"] as number[]), text: (p) => ({ skip: printParam(p["skip"]!) }), onAttention: true },
    asDraft: (p, model) => ({ model, k: p["k"]! }),
  },
  greedyIds: () => ({ k: 0, argmax: true }),
};
