import type { Builder } from "../../../graph/ir/builder.ts";
import type { Value } from "../../../graph/ir/value.ts";
import { TO_THE_END, type FusedRotary } from "../../attention/rotary-fusable.ts";

export const MS_DOMAIN = "com.microsoft";

/**
 * `rows` [B, H, R, D] rotated at R positions by one fused com.microsoft.RotaryEmbedding (one
 * pass over the rows instead of a Slice/Neg/Concat/Mul/Mul/Add chain). Its tables are the
 * model's own cos/sin at those positions (`anglesAt`, [.., R, lanes]) as [R, D/2], so row r reads table row r:
 * position_ids is the offset 0. `tables`: the tables already cut, by the angle value at the
 * positions they were cut from (layers sharing a rotary and positions share them).
 */
export function fusedRotaryAt(b: Builder, rotary: FusedRotary, rows: Value, anglesAt: (angle: Value) => Value, tables: Map<Value, Value>): Value {
  // [.., R, lanes] (leading axes of 1: angles do not vary by batch row or head) -> [R, lanes],
  // cut to D/2 lanes where cos/sin are full-width (the op rejects any other width in one line).
  const { lanes } = rotary;
  const cut = (angles: Value) => {
    // Flatten, not Reshape to [R, -1]: R is 0 for an append-only model's empty past (a prompt),
    // where -1 is ambiguous and a 0 in Reshape's shape copies the input's axis.
    const rows_R = b.op.Flatten(angles, { axis: -1 });
    if (lanes === "all") return rows_R;
    const [end, step] = lanes === "even" ? [b.int64([TO_THE_END]), b.int64([2])] : [lanes.first, b.int64([1])];
    return b.op.Slice(rows_R, b.int64([0]), end, b.int64([-1]), step);
  };
  const table = (angle: Value) => {
    const angles = anglesAt(angle);
    const known = tables.get(angles) ?? cut(angles);
    tables.set(angles, known);
    return known;
  };
  return b.domain(MS_DOMAIN).RotaryEmbedding(rows, b.int64([0]), table(rotary.cos), table(rotary.sin), { interleaved: rotary.interleaved ? 1 : 0 });
}
