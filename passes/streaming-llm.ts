import type { Model } from "../compiler/ir/model.ts";
import type { Pass, PassContext, PassResult } from "../compiler/pass-manager/pass.ts";
import { denseCanonicalNodes } from "./sparse-attention/layers.ts";
import { SparseSite } from "./sparse-attention/site.ts";

export const STREAMING_LLM = "streaming-llm";

export interface StreamingLlmOptions {
  /** Attention-sink tokens kept from the start of the sequence. */
  sinks: number;
  /** Most recent tokens kept (the new one included). */
  window: number;
}

/** StreamingLLM (Xiao et al., ICLR 2024; algorithms.md §5a): 4 sinks + 1020 recent tokens, a 1024-token cache. */
export const STREAMING_LLM_DEFAULTS: StreamingLlmOptions = { sinks: 4, window: 1020 };

/**
 * StreamingLLM: every decode step attends to the first `sinks` keys and the last `window` keys,
 * gathered (the keys between are not read). The runtime's eviction (runtime/cache/streaming.ts)
 * keeps the cache at sinks + window rows so memory stays bounded however long generation runs;
 * the graph's selection makes the model behave the same whether or not the runtime has evicted
 * yet. Prefill and multi-token steps attend to everything: a shared key set cannot be causal for
 * queries at different positions, and the paper's prompt is dense too.
 *
 * Positions keep counting from the sequence start (the runtime passes absolute position ids to
 * a cache whose keys were rotated when they were written); the paper re-positions inside the
 * cache, which needs un-rotated keys in the cache.
 */
export function createStreamingLlm(options: Partial<StreamingLlmOptions> = {}): Pass {
  const opts = { ...STREAMING_LLM_DEFAULTS, ...options };
  return {
    name: STREAMING_LLM,
    description: `StreamingLLM: attend to ${opts.sinks} sink tokens and the ${opts.window} most recent (lossy)`,
    lossy: true,
    run(model: Model, ctx: PassContext): PassResult {
      const layers = streamingLlm(model, opts);
      if (layers === 0) ctx.note("no canonical attention nodes: run lift-attention first");
      return { changed: layers > 0, stats: { layers } };
    },
  };
}

/** Rewrites every dense canonical attention node; returns how many. */
export function streamingLlm(model: Model, opts: StreamingLlmOptions): number {
  const nodes = denseCanonicalNodes(model);
  for (const node of nodes) {
    const site = new SparseSite(model, node, STREAMING_LLM);
    const b = site.b;
    const sinks_1 = site.min(b.int64([opts.sinks]), site.N_1);
    const rest_1 = b.op.Sub(site.N_1, sinks_1);
    const recent_1 = site.decodeOnly(site.min(b.int64([opts.window]), rest_1), rest_1);
    const keep_K = b.op.Concat(site.range(b.int64([0]), sinks_1), site.range(b.op.Sub(site.N_1, recent_1), site.N_1), { axis: 0 });
    site.attendShared(keep_K);
  }
  return nodes.length;
}
