import { PassRegistry } from "../graph/pass-manager/registry.ts";
import { createLiftAttention, createLowerAttention } from "./attention/index.ts";
import { createAllPositionLogits } from "./speculative/all-position-logits.ts";
import { createCse } from "./cleanup/cse.ts";
import { createDce } from "./cleanup/dce.ts";
import { createLogitsTopk } from "./speculative/logits-topk.ts";
import { createVisualTokenDistances } from "./vision/visual-token-distances.ts";
import { createSelfDraft } from "./speculative/self-draft.ts";
import { createKvAppendOnly } from "./kv/kv-append-only.ts";
import { createToposort } from "./cleanup/toposort.ts";
import { createTreeAttentionMask } from "./speculative/tree-attention-mask.ts";

/**
 * The passes that are no method's own: cleanup, the attention brackets, the KV and speculative
 * rewrites the compiler places, vision support. A method's pass (a sparse attention or KV
 * rewrite) is registered from its method table entry (compiler/methods/registry.ts), with the
 * method's parameters and defaults as its options. The manager validates and converts the options
 * a `--passes` pipeline gives before calling `create`.
 */
export function supportPassRegistry(): PassRegistry {
  return new PassRegistry()
    .register({ name: "toposort", create: createToposort })
    .register({ name: "dce", create: createDce })
    .register({ name: "cse", create: createCse })
    .register({
      name: "lift-attention",
      options: { trace: { type: "boolean", description: "note why a rule that lifted nothing did not match", default: false } },
      create: createLiftAttention,
    })
    .register({ name: "lower-attention", create: createLowerAttention })
    .register({
      name: "kv-append-only",
      options: { split_attention: { type: "boolean", description: "attend over past and new rows as two blocks instead of their Concat (no cache copy in the step)", default: true } },
      create: createKvAppendOnly,
    })
    .register({ name: "all-position-logits", create: createAllPositionLogits })
    .register({
      name: "logits-topk",
      options: {
        k: { type: "int", description: "candidates per position in logits_topk_values/indices (0: none)", default: 8 },
        argmax: { type: "boolean", description: "add logits_argmax [B, S]", default: true },
        min_vocab: { type: "int", description: "add nothing when the logits cover fewer ids than this (0: always add)", default: 0 },
      },
      create: createLogitsTopk,
    })
    .register({ name: "tree-attention-mask", create: createTreeAttentionMask })
    .register({ name: "visual-token-distances", create: createVisualTokenDistances })
    .register({
      name: "self-draft",
      options: {
        skip: { type: "string", description: "decoder layers to skip, e.g. [1, 3]" },
        keep_every: { type: "int", description: "keep layers 0, n, 2n, ... and skip the rest" },
      },
      create: () => createSelfDraft(),
    });
}
