import { ADAPTIVE_DEFAULTS } from "../../runtime/speculative/draft-length.ts";
import type { MethodDefinition } from "./method.ts";
import { draftLength } from "./params.ts";

/** Prompt-lookup decoding: the runtime's Speculator drafts from the context; the driver passes it the stage's settings. */
export const LOOKUP: MethodDefinition = {
  slot: "speculate",
  name: "lookup",
  doc: "prompt-lookup decoding: draft the continuation of the last n-gram's earlier occurrence",
  lossy: false,
  params: {
    ngram: { type: { kind: "int", min: 1 }, default: 3, doc: "n-gram length matched against the context" },
    max_draft: { type: { kind: "draft-length", adaptive: ADAPTIVE_DEFAULTS }, default: { adaptive: ADAPTIVE_DEFAULTS }, doc: "tokens drafted per step, or adaptive(threshold, min, max): the runtime's guard and cost model decide" },
  },
  lowering: { level: "runtime" },
  runtime: { speculation: (p) => ({ kind: "lookup", maxNgram: p["ngram"] as number, ...draftLength(p["max_draft"]!) }) },
  greedyIds: () => ({ k: 0, argmax: true }),
};
