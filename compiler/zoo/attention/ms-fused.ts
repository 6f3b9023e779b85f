import { float } from "../../ir/attribute.ts";
import { DataType } from "../../ir/dtype.ts";
import type { Value } from "../../ir/value.ts";
import { additiveMask, dimOf, visibilityMask } from "../mask.ts";
import { rotaryHalfTables } from "../rotary.ts";
import { attentionScale, type AttentionEncoder } from "./types.ts";

const MS = "com.microsoft";

/**
 * onnxruntime's contrib ops. With rotary (Llama): GroupQueryAttention as onnxruntime-genai's
 * builder emits it, rotating q and k itself from cos/sin caches at the positions implied by
 * `seqlens_k`; `seqlens_k` (valid keys - 1 per row) and `total_sequence_length` are computed
 * from attention_mask so the external inputs stay Optimum's (position_ids is then unused:
 * GroupQueryAttention derives positions from the sequence lengths, which agrees for
 * unpadded and right-padded batches). onnxruntime 1.30's CPU kernel accepts a past of length 0
 * on the first call and a past that is not a shared max-length buffer (present is then
 * [B, Hkv, P+S, D]), but its fused rotary needs D % 16 == 0: smaller heads are rotated first
 * by com.microsoft.RotaryEmbedding at position_ids, as genai's builder does when it cannot fuse.
 * Without rotary (GPT-2): MultiHeadAttention with the causal+padding mask as attention_bias.
 */
export const msFusedAttention: AttentionEncoder = (b, spec, inputs) => {
  const scale = float(attentionScale(spec));
  const rotary = spec.rotary;
  if (!rotary) {
    const bias = additiveMask(b, visibilityMask(b, inputs)); // [B, 1, S, T]
    return ({ q, k, v, pastKey, pastValue }) => {
      const node = b.node("MultiHeadAttention", [q, k, v, undefined, undefined, bias, pastKey, pastValue], {
        domain: MS,
        outputs: 3,
        attributes: { num_heads: spec.heads, scale },
      });
      return { output: node.output(0), presentKey: node.output(1), presentValue: node.output(2) };
    };
  }

  const validKeys = b.op.ReduceSum(inputs.attentionMask, b.int64([1]), { keepdims: 0 }); // [B]
  const seqlensK = b.op.Cast(b.op.Sub(validKeys, b.int64(1)), { to: DataType.INT32 });
  const totalLength = b.op.Cast(dimOf(b, inputs.attentionMask, 1), { to: DataType.INT32 });
  const tables = rotaryHalfTables(spec.headDim, rotary.maxPositions, rotary.theta);
  const dims = [rotary.maxPositions, spec.headDim / 2];
  const cos = b.constant(DataType.FLOAT, dims, tables.cos, "cos_cache");
  const sin = b.constant(DataType.FLOAT, dims, tables.sin, "sin_cache");
  const interleaved = rotary.layout === "interleaved" ? 1 : 0;
  const fused = spec.headDim % 16 === 0;
  const rotate = (x: Value, heads: number) =>
    fused ? x : b.domain(MS).RotaryEmbedding(x, inputs.positionIds, cos, sin, { num_heads: heads, interleaved });
  return ({ q, k, v, pastKey, pastValue }) => {
    const node = b.node("GroupQueryAttention", [rotate(q, spec.heads), rotate(k, spec.kvHeads), v, pastKey, pastValue, seqlensK, totalLength, ...(fused ? [cos, sin] : [])], {
      domain: MS,
      outputs: 3,
      attributes: {
        num_heads: spec.heads,
        kv_num_heads: spec.kvHeads,
        scale,
        do_rotary: fused ? 1 : 0,
        rotary_interleaved: fused ? interleaved : undefined,
      },
    });
    return { output: node.output(0), presentKey: node.output(1), presentValue: node.output(2) };
  };
};
