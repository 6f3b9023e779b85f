import type { MethodDefinition } from "./method.ts";
import { keepOf } from "./params.ts";
import { VISUAL_TOKEN_DISTANCES } from "./support-passes.ts";

// Visual token pruning runs in the runtime between the vision encoder and the decoder (runtime/vision/prune/).
export const DIVPRUNE: MethodDefinition = {
  slot: "prune",
  name: "divprune",
  doc: "DivPrune: keep the most diverse subset of visual tokens",
  lossy: true,
  params: { keep: { type: { kind: "budget" }, default: { percent: 10 }, doc: "visual tokens kept" } },
  // The greedy diversity selection reads the tokens' pairwise distances, computed in the encoder's graph.
  lowering: { level: "runtime", support: { name: VISUAL_TOKEN_DISTANCES, options: () => ({}) } },
  runtime: { prune: (p) => ({ method: "divprune", keep: keepOf(p["keep"]!) }) },
};
