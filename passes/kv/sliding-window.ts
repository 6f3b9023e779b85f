import { DataType } from "../../graph/ir/dtype.ts";
import type { Model } from "../../graph/ir/model.ts";
import type { Value } from "../../graph/ir/value.ts";
import type { Pass, PassContext, PassResult } from "../../graph/pass-manager/pass.ts";
import { emitCanonical } from "../attention/canonical-node.ts";
import { lowestOf } from "../attention/ops.ts";
import { reportAttendedKeys } from "../sparse-attention/attend-selected.ts";
import { denseCanonicalNodes, NO_ATTENTION_LEFT } from "../sparse-attention/layers.ts";
import { SparseSite } from "../sparse-attention/site.ts";

export const SLIDING_WINDOW = "sliding-window";

export interface SlidingWindowOptions {
  /** Keys each query attends to: itself and the size - 1 before it. */
  size: number;
}

/**
 * Sliding-window attention (Mistral 7B, Jiang et al. 2023): every query attends to its last
 * `size` keys, itself included, in every layer; prefill, decode and verification alike. Lossy on
 * a model not trained with it. The window is a band over the keys' rows (query t of T sees key n
 * when N - T + t - size < n), not over position ids: the runtime's eviction
 * (runtime/kv-policies/sliding-window.ts) keeps the last size - 1 rows, a contiguous run, so
 * row distances stay token distances and the band hides exactly what eviction dropped. The model's
 * own mask and causality still apply (an existing narrower window, Gemma 2's local layers, wins).
 */
export function createSlidingWindow(opts: SlidingWindowOptions): Pass {
  return {
    name: SLIDING_WINDOW,
    description: `sliding-window attention: each query attends to its ${opts.size} most recent keys (lossy)`,
    lossy: true,
    run(model: Model, ctx: PassContext): PassResult {
      const layers = slidingWindow(model, opts);
      if (layers === 0) ctx.note(NO_ATTENTION_LEFT);
      return { changed: layers > 0, stats: { layers } };
    },
  };
}

/** Narrows every dense canonical attention node to the window; returns how many. */
export function slidingWindow(model: Model, { size }: SlidingWindowOptions): number {
  const nodes = denseCanonicalNodes(model);
  // Every layer of a decoder step has the same T queries and N keys: one band serves all.
  let band_11TN: Value | undefined;
  for (const node of nodes) {
    const site = new SparseSite(model, node, SLIDING_WINDOW);
    const b = site.b;
    band_11TN ??= inWindow(site, size);
    const mask = b.op.Where(band_11TN, site.bias() ?? b.float32(0), b.float32(lowestOf(DataType.FLOAT)));
    reportAttendedKeys(site, [{ mask, keys_1: site.N_1 }]);
    const out = emitCanonical(
      b,
      { query_BHTD: site.query_BHTD, key_BHkvND: site.key_BHkvND, value_BHkvND: site.value_BHkvND, mask },
      { ...site.attrs, is_causal: 0, mask_kind: "additive", source_form: `${site.attrs.source_form}+${SLIDING_WINDOW}` },
    );
    node.output(0).replaceAllUsesWith(out);
    node.graph!.remove(node);
  }
  return nodes.length;
}

/** bool [1, 1, T, N]: query t (row N - T + t) is within `size` rows of key n, at or after it (later keys are causality's). */
function inWindow(site: SparseSite, size: number): Value {
  const b = site.b;
  const zero = b.int64([0]);
  const firstKept_T = b.op.Add(site.range(zero, site.T_1), site.scalar(b.op.Sub(site.N_1, b.op.Add(site.T_1, b.int64([size - 1])))));
  const keys_N = site.range(zero, site.N_1);
  const band_TN = b.op.Not(b.op.Less(site.ops.unsqueeze(keys_N, [0]), site.ops.unsqueeze(firstKept_T, [1])));
  return site.ops.unsqueeze(band_TN, [0, 1]);
}
