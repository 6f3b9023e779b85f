import { float } from "../../ir/attribute.ts";
import { DataType } from "../../ir/dtype.ts";
import type { Value } from "../../ir/value.ts";
import { visibilityMask } from "../mask.ts";
import { rotaryHalfTables } from "../rotary.ts";
import { attentionScale, type AttentionEncoder } from "./types.ts";

/**
 * ONNX's own Attention-23 (GQA, past/present) with RotaryEmbedding-23 gathering cos/sin by
 * position_ids. The CPU kernel wants the query length in the mask's dim -2, so the mask is the
 * full bool [B, 1, S, T] visibility (true = attend).
 */
export const standardAttention: AttentionEncoder = (b, spec, inputs) => {
  const mask = visibilityMask(b, inputs);
  const rotary = spec.rotary;
  let rotate = (x: Value, _heads: number) => x;
  if (rotary) {
    const tables = rotaryHalfTables(spec.headDim, rotary.maxPositions, rotary.theta);
    const dims = [rotary.maxPositions, spec.headDim / 2];
    const cos = b.constant(DataType.FLOAT, dims, tables.cos, "cos_cache");
    const sin = b.constant(DataType.FLOAT, dims, tables.sin, "sin_cache");
    const interleaved = rotary.layout === "interleaved" ? 1 : 0;
    rotate = (x, heads) => b.op.RotaryEmbedding(x, cos, sin, inputs.positionIds, { num_heads: heads, interleaved });
  }
  return ({ q, k, v, pastKey, pastValue }) => {
    const node = b.node("Attention", [rotate(q, spec.heads), rotate(k, spec.kvHeads), v, mask, pastKey, pastValue], {
      outputs: 3,
      attributes: { q_num_heads: spec.heads, kv_num_heads: spec.kvHeads, scale: float(attentionScale(spec)) },
    });
    return { output: node.output(0), presentKey: node.output(1), presentValue: node.output(2) };
  };
};
