import { PassRegistry } from "../graph/pass-manager/registry.ts";
import { createLiftAttention, createLowerAttention } from "./attention/index.ts";
import { createAllPositionLogits } from "./speculative/all-position-logits.ts";
import { createCse } from "./cleanup/cse.ts";
import { createDce } from "./cleanup/dce.ts";
import { createLogitsTopk } from "./speculative/logits-topk.ts";
import { createVisualTokenDistances } from "./vision/visual-token-distances.ts";
import { createSelfDraft } from "./speculative/self-draft.ts";
import { formatBudget, parseBudget } from "./sparse-attention/budget.ts";
import { parseAutoCount, parseLayers } from "./sparse-attention/options.ts";
import { createStreamingLlm, STREAMING_LLM, STREAMING_LLM_DEFAULTS } from "./kv/streaming-llm.ts";
import { createTidalDecode, TIDAL_DECODE, TIDAL_DEFAULTS } from "./sparse-attention/tidal-decode.ts";
import { createTokenSelect, TOKEN_SELECT, TOKEN_SELECT_DEFAULTS } from "./sparse-attention/token-select.ts";
import { createKvAppendOnly } from "./kv/kv-append-only.ts";
import { createToposort } from "./cleanup/toposort.ts";
import { createTreeAttentionMask } from "./speculative/tree-attention-mask.ts";

/**
 * Every pass the command line and .pipe files can name. Add a pass here with its options; the
 * manager validates and converts the options a pipeline gives before calling `create`.
 */
export function defaultRegistry(): PassRegistry {
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
    // Sparse attention rewrites canonical nodes: --passes lift-attention,<pass>,lower-attention.
    .register({
      name: STREAMING_LLM,
      options: {
        sinks: { type: "int", description: "attention-sink tokens kept from the start", default: STREAMING_LLM_DEFAULTS.sinks },
        window: { type: "int", description: "most recent tokens kept", default: STREAMING_LLM_DEFAULTS.window },
        kv_append_only: { type: "boolean", description: "attend over past and new rows apart, then rewrite to the append-only KV contract (kv-append-only) where the model allows: no cache Concat (not with a tree mask)", default: false },
      },
      create: (o) => createStreamingLlm({ sinks: o["sinks"] as number, window: o["window"] as number, appendOnly: o["kv_append_only"] === true }),
    })
    .register({
      name: TIDAL_DECODE,
      options: {
        top_k: { type: "string", description: "keys per query head in sparse layers: a count or a share (12.5%)", default: "256" },
        full_layers: { type: "string", description: "leading layers that keep full attention; auto: the paper's 2, fewer in a model of under 4 layers", default: String(TIDAL_DEFAULTS.fullLayers) },
        select_layers: { type: "string", description: "token-selection layers ([2, 13]); auto: the paper's 13/32 depth", default: "auto" },
        kv_append_only: { type: "boolean", description: "then rewrite to the append-only KV contract (kv-append-only) where the model allows: sparse layers read only the selected past rows, no cache Concat", default: false },
      },
      create: (o) =>
        createTidalDecode({
          topK: parseBudget(String(o["top_k"]), `${TIDAL_DECODE}: top_k`),
          fullLayers: parseAutoCount(String(o["full_layers"]), `${TIDAL_DECODE}: full_layers`),
          selectLayers: parseLayers(String(o["select_layers"]), `${TIDAL_DECODE}: select_layers`),
          appendOnly: o["kv_append_only"] === true,
        }),
    })
    .register({
      name: TOKEN_SELECT,
      options: {
        top_k: { type: "string", description: "keys attended per step (sinks, window and selected together): a count or a share (12.5%)", default: formatBudget(TOKEN_SELECT_DEFAULTS.topK) },
        sinks: { type: "string", description: "leading tokens always attended to; auto: the paper's share of top_k", default: String(TOKEN_SELECT_DEFAULTS.sinks) },
        window: { type: "string", description: "most recent tokens always attended to; auto: the paper's share of top_k", default: String(TOKEN_SELECT_DEFAULTS.window) },
        kernel_size: { type: "int", description: "max-pooling width over the votes; -1: none", default: TOKEN_SELECT_DEFAULTS.kernelSize },
        selection_cache: { type: "boolean", description: "reuse the selection while consecutive queries are similar (the runtime carries it)", default: false },
        cache_threshold: { type: "number", description: "query cosine similarity above which the selection is reused", default: 0.9 },
        kv_append_only: { type: "boolean", description: "then rewrite to the append-only KV contract (kv-append-only) where the model allows: sparse layers read only the selected past rows, no cache Concat", default: false },
      },
      create: (o) =>
        createTokenSelect({
          topK: parseBudget(String(o["top_k"]), `${TOKEN_SELECT}: top_k`),
          sinks: parseAutoCount(String(o["sinks"]), `${TOKEN_SELECT}: sinks`),
          window: parseAutoCount(String(o["window"]), `${TOKEN_SELECT}: window`),
          kernelSize: o["kernel_size"] as number,
          selectionCache: o["selection_cache"] === true ? { threshold: o["cache_threshold"] as number } : undefined,
          appendOnly: o["kv_append_only"] === true,
        }),
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
      create: createSelfDraft,
    });
}
