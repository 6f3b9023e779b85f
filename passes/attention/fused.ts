import type { Node } from "../../graph/ir/node.ts";
import type { Value } from "../../graph/ir/value.ts";
import type { CanonicalAttentionAttrs } from "./canonical.ts";
import { emitCanonical } from "./canonical-node.ts";
import type { OpsetOps } from "./ops.ts";

/** One fused block in canonical layout: new keys and values only, the cache still to be grown. */
export interface FusedOperands {
  query_BHSD: Value;
  newKey_BHkvSD: Value;
  newValue_BHkvSD: Value;
  pastKey_BHkvPD?: Value;
  pastValue_BHkvPD?: Value;
  /** How new keys/values enter the cache; default: Concat after the past along the sequence. */
  writeCache?: (past_BHkvPD: Value, new_BHkvSD: Value) => Value;
  /** The mask, or how to build it from the grown cache (when it depends on the present length). */
  mask?: Value | ((presentKey_BHkvND: Value) => Value);
}

/**
 * What every fused op lifts to: the cache grown by Concat on the sequence axis, or written as the
 * op wrote it, then the canonical node. Returns its output [B, H, S, D] and the present K/V.
 */
export function liftFused(ops: OpsetOps, o: FusedOperands, attrs: CanonicalAttentionAttrs): { out_BHSD: Value; presentKey: Value; presentValue: Value } {
  const b = ops.b;
  const write = o.writeCache ?? ((past, now) => b.op.Concat(past, now, { axis: 2 }));
  const grow = (past: Value | undefined, now: Value) => (past ? write(past, now) : now);
  const presentKey = grow(o.pastKey_BHkvPD, o.newKey_BHkvSD);
  const presentValue = grow(o.pastValue_BHkvPD, o.newValue_BHkvSD);
  const mask = typeof o.mask === "function" ? o.mask(presentKey) : o.mask;
  const out_BHSD = emitCanonical(b, { query_BHTD: o.query_BHSD, key_BHkvND: presentKey, value_BHkvND: presentValue, mask }, attrs);
  return { out_BHSD, presentKey, presentValue };
}

/** Inputs from `first` on that are present: fused-op features the lift does not model. */
export function extraInputs(node: Node, first: number, names: readonly string[]): string | undefined {
  for (let i = first; i < node.inputs.length; i++) {
    if (node.inputs[i]) return `${node.describe()} uses input ${i} (${names[i - first] ?? "?"}), which lift-attention does not model`;
  }
  return undefined;
}

/** bool [B, 1, 1, N]: key n of row b is one of its first validKeys[b] keys. */
export function keysBelow(ops: OpsetOps, key_BHkvND: Value, validKeys_B: Value): Value {
  const b = ops.b;
  const n = b.op.Reshape(ops.dim(key_BHkvND, 2), b.int64([], [0]));
  const keys_1N = ops.unsqueeze(b.op.Range(b.int64(0), n, b.int64(1)), [0]);
  return ops.unsqueeze(b.op.Less(keys_1N, ops.unsqueeze(validKeys_B, [1])), [1, 2]);
}
