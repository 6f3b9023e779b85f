import { ADAPTIVE_DEFAULTS } from "../../runtime/speculative/draft-length.ts";
import type { MethodDefinition } from "./method.ts";
import { draftLength } from "./params.ts";

/** Speculative sampling with a draft model: the driver opens it and passes it to the runtime's Speculator. */
export const DRAFT: MethodDefinition = {
  slot: "speculate",
  name: "draft",
  doc: "speculative sampling with a smaller draft model of the same vocabulary",
  lossy: false,
  params: {
    model: { type: { kind: "model" }, doc: "the draft model, declared with `model`" },
    k: { type: { kind: "draft-length", adaptive: ADAPTIVE_DEFAULTS }, default: { adaptive: ADAPTIVE_DEFAULTS }, doc: "tokens drafted per step, or adaptive(threshold, min, max) (SpecDec++ with the runtime's guard)" },
  },
  lowering: { level: "runtime" },
  runtime: { speculation: (p) => ({ kind: "draft", model: p["model"] as string, ...draftLength(p["k"]!) }) },
  greedyIds: () => ({ k: 0, argmax: true }),
};
