import { PipecError } from "../../graph/errors.ts";
import type { Model } from "../../graph/ir/model.ts";
import type { PassContext } from "../../graph/pass-manager/pass.ts";
import { rewriteAppendOnly } from "../kv/kv-append-only.ts";

/**
 * After a sparse rewrite (option kv_append_only): the append-only KV contract where the model
 * allows it. The sparse layers already read the past buffer and the new rows apart, so with it
 * no layer concatenates the cache: dense layers attend over past and new rows as two blocks and
 * the runtime's append cache owns the buffer. Where kv-append-only refuses (a fused
 * GroupQueryAttention cache, no position_ids, ...) the model keeps its present.* outputs and a
 * note says why. Canonical nodes it does not split are left for lower-attention.
 */
export function appendOnlyWhereAllowed(model: Model, ctx: PassContext): boolean {
  try {
    const result = rewriteAppendOnly(model, { splitAttention: true, lowerRest: false }, (n) => ctx.note(`kv_append_only: ${n}`));
    if (result.changed) ctx.note(`kv_append_only: present_new.* outputs, ${result.stats?.["attention-blocks-split"] ?? 0} dense blocks split over past and new rows`);
    return result.changed;
  } catch (e) {
    if (!(e instanceof PipecError)) throw e;
    ctx.note(`kv_append_only: not applied, ${e.message}`);
    return false;
  }
}
