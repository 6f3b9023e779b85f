import { PipecError } from "../compiler/errors.ts";
import type { Model } from "../compiler/ir/model.ts";
import type { Node } from "../compiler/ir/node.ts";
import type { Value } from "../compiler/ir/value.ts";
import type { Pass, PassContext, PassResult } from "../compiler/pass-manager/pass.ts";
import { emitCanonical } from "./attention/canonical-node.ts";
import { cacheConcat } from "./kv-split-attention.ts";
import { denseCanonicalNodes } from "./sparse-attention/layers.ts";
import { SparseSite } from "./sparse-attention/site.ts";
import { PositionFlow } from "./streaming-llm/rotation.ts";

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
 * keeps the cache at sinks + window rows so memory stays bounded however long generation runs.
 * Prefill and multi-token steps attend to everything: a shared key set cannot be causal for
 * queries at different positions, and the paper's prompt is dense too.
 *
 * Positions are the paper's, within the cache: the kept keys sit at 0..K-1 (sinks, then the
 * window) and the step's T queries at K-T..K-1. With rotary embeddings the cache holds keys
 * before rotation (the present outputs carry them), and the graph rotates the kept keys and the
 * queries at those positions every step: O(K) elementwise work per layer, K bounded by
 * sinks + window. Re-rotating keys cached at absolute positions instead would bound the
 * distances but not the query's own position, which a rotary table of max_position rows (or a
 * learned position table) cannot serve. Because the positions come from the kept set, the
 * output is the same whether or not the runtime has evicted yet. Models without rotary (learned
 * absolute positions, GPT-2) are positioned by the runtime, which feeds the in-cache position.
 */
export function createStreamingLlm(options: Partial<StreamingLlmOptions> = {}): Pass {
  const opts = { ...STREAMING_LLM_DEFAULTS, ...options };
  return {
    name: STREAMING_LLM,
    description: `StreamingLLM: attend to ${opts.sinks} sink tokens and the ${opts.window} most recent (lossy)`,
    lossy: true,
    run(model: Model, ctx: PassContext): PassResult {
      const { layers, rotated } = streamingLlmLayers(model, opts);
      if (layers === 0) ctx.note("no canonical attention nodes: run lift-attention first");
      return { changed: layers > 0, stats: { layers, rotated } };
    },
  };
}

/** Rewrites every dense canonical attention node; returns how many. */
export function streamingLlm(model: Model, opts: StreamingLlmOptions): number {
  return streamingLlmLayers(model, opts).layers;
}

/** Rewrites every dense canonical attention node; `rotated`: how many of them re-rotate at in-cache positions. */
export function streamingLlmLayers(model: Model, opts: StreamingLlmOptions): { layers: number; rotated: number } {
  const nodes = denseCanonicalNodes(model);
  const flow = new PositionFlow(model.graph);
  const pastInputs = new Set(model.graph.inputs.filter((i) => i.name.startsWith("past_key_values.")));
  let rotated = 0;
  for (const node of nodes) {
    const site = new SparseSite(model, node, STREAMING_LLM);
    const b = site.b;
    const [query, key, value, mask] = node.inputs as Value[];
    const what = `layer ${site.attrs.layer}`;
    const cache = cacheConcat(key, pastInputs);
    const keyRotation = flow.rotationOf(b, cache?.rows ?? key!, `${what} keys`);
    const queryRotation = flow.rotationOf(b, query!, `${what} queries`);
    if (!keyRotation !== !queryRotation) {
      throw new PipecError("streaming-positions", `${what}: only the ${keyRotation ? "keys" : "queries"} carry a rotary embedding; cannot place them at in-cache positions`);
    }

    const sinks_1 = site.min(b.int64([opts.sinks]), site.N_1);
    const rest_1 = b.op.Sub(site.N_1, sinks_1);
    const recent_1 = site.decodeOnly(site.min(b.int64([opts.window]), rest_1), rest_1);
    const keep_K = b.op.Concat(site.range(b.int64([0]), sinks_1), site.range(b.op.Sub(site.N_1, recent_1), site.N_1), { axis: 0 });
    const gather = (x: Value, axis: number) => b.op.Gather(x, keep_K, { axis });

    let keptKey: Value;
    let keptQuery = query!;
    if (!keyRotation || !queryRotation) keptKey = gather(key!, 2);
    else {
      // The cache keeps un-rotated keys: its rows are re-positioned at every step.
      if (cache) holdUnrotated(key!.producer!, node, keyRotation.unrotated, what);
      const rawKey = cache ? key! : keyRotation.unrotated;
      const K_1 = b.op.Add(sinks_1, recent_1);
      const positions = (from_1: Value) => site.ops.unsqueeze(site.range(from_1, K_1), [0]);
      keptKey = keyRotation.at(b, gather(rawKey, 2), positions(b.int64([0])));
      keptQuery = queryRotation.at(b, queryRotation.unrotated, positions(b.op.Sub(K_1, site.T_1)));
      rotated++;
    }
    const out = emitCanonical(
      b,
      { query_BHTD: keptQuery, key_BHkvND: keptKey, value_BHkvND: gather(value!, 2), mask: mask && gather(mask, 3) },
      { ...site.attrs, source_form: `${site.attrs.source_form}+${STREAMING_LLM}` },
    );
    node.output(0).replaceAllUsesWith(out);
    node.graph!.remove(node);
  }
  return { layers: nodes.length, rotated };
}

/** Makes the cache Concat append `unrotated` rows, so the present output carries keys before rotation. */
function holdUnrotated(concat: Node, attention: Node, unrotated: Value, what: string): void {
  const readers = concat.output(0).consumers().filter((n) => n !== attention && n.op !== "Shape");
  if (readers.length) throw new PipecError("streaming-positions", `${what}: the rotated keys are also read by ${readers[0]!.describe()}; cannot cache them un-rotated`);
  concat.setInput(1, unrotated);
}
