import type { Value } from "../../graph/ir/value.ts";
import type { OpsetOps } from "./ops.ts";

/**
 * Rotary embedding spelled in standard ops, for fused ops that rotated Q and K themselves.
 * cos/sin [B, 1, S, D/2] (gathered per position); `interleaved` rotates lanes (2i, 2i+1),
 * otherwise (i, i + D/2).
 */
export function rotate(ops: OpsetOps, x_BHSD: Value, cos_B1SH: Value, sin_B1SH: Value, halfDim: number, interleaved: boolean): Value {
  const b = ops.b;
  const end = Number.MAX_SAFE_INTEGER;
  const [first, second] = interleaved
    ? [ops.slice(x_BHSD, -1, 0, end, 2), ops.slice(x_BHSD, -1, 1, end, 2)]
    : [ops.slice(x_BHSD, -1, 0, halfDim), ops.slice(x_BHSD, -1, halfDim, end)];
  const rotatedFirst = b.op.Sub(b.op.Mul(first, cos_B1SH), b.op.Mul(second, sin_B1SH));
  const rotatedSecond = b.op.Add(b.op.Mul(second, cos_B1SH), b.op.Mul(first, sin_B1SH));
  if (!interleaved) return b.op.Concat(rotatedFirst, rotatedSecond, { axis: -1 });
  const pairs = b.op.Concat(ops.unsqueeze(rotatedFirst, [-1]), ops.unsqueeze(rotatedSecond, [-1]), { axis: -1 }); // [B, H, S, D/2, 2]
  return b.op.Reshape(pairs, b.int64([0, 0, 0, -1]));
}

/** cos or sin cache [maxPositions, D/2] rows at `positions` [B, S], shaped [B, 1, S, D/2]. */
export function gatherRows(ops: OpsetOps, cache: Value, positions_BS: Value): Value {
  return ops.unsqueeze(ops.b.op.Gather(cache, positions_BS), [1]);
}
