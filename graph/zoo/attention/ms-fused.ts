import { float } from "../../ir/attribute.ts";
import type { Builder } from "../../ir/builder.ts";
import { DataType } from "../../ir/dtype.ts";
import type { Value } from "../../ir/value.ts";
import { additiveMask, dimOf, visibilityMask, type DecoderInputs } from "../mask.ts";
import { rotaryHalfTables } from "../rotary.ts";
import { attentionScale, type AttentionEncoder, type AttentionSpec, type LayerAttentionInputs, type LayerAttentionOutputs } from "./types.ts";

const MS = "com.microsoft";

/** onnxruntime's contrib ops: GroupQueryAttention with rotary (Llama), MultiHeadAttention without (GPT-2). */
export const msFusedAttention: AttentionEncoder = (b, spec, inputs) =>
  spec.rotary ? groupQueryAttention(b, spec, inputs) : multiHeadAttention(b, spec, inputs);

/**
 * GroupQueryAttention as onnxruntime-genai's builder emits it: it rotates q and k itself from
 * cos/sin caches at the positions implied by `seqlens_k`. `seqlens_k` (valid keys - 1 per row)
 * and `total_sequence_length` are computed from attention_mask so the external inputs stay
 * Optimum's; position_ids then goes unused, and positions agree with it for unpadded and
 * right-padded batches. onnxruntime's CPU kernel (1.30) takes a past of length 0 on the
 * first call and a past that is not a shared max-length buffer (present is then
 * [B, Hkv, P+S, D]), but the fused rotary needs D % 16 == 0, so smaller heads are rotated
 * beforehand by com.microsoft.RotaryEmbedding at position_ids.
 */
function groupQueryAttention(b: Builder, spec: AttentionSpec, inputs: DecoderInputs): (layer: LayerAttentionInputs) => LayerAttentionOutputs {
  const rotary = spec.rotary!;
  const validKeys = b.op.ReduceSum(inputs.attentionMask, b.int64([1]), { keepdims: 0 }); // [B]
  const seqlensK = b.op.Cast(b.op.Sub(validKeys, b.int64(1)), { to: DataType.INT32 });
  const totalLength = b.op.Cast(dimOf(b, inputs.attentionMask, 1), { to: DataType.INT32 });
  const tables = rotaryHalfTables(spec.headDim, rotary.maxPositions, rotary.theta);
  const dims = [rotary.maxPositions, spec.headDim / 2];
  const cos = b.constant(DataType.FLOAT, dims, tables.cos, "cos_cache");
  const sin = b.constant(DataType.FLOAT, dims, tables.sin, "sin_cache");
  const interleaved = rotary.layout === "interleaved" ? 1 : 0;
  const fused = spec.headDim % 16 === 0;
  const rotate = (x: Value, heads: number) => (fused ? x : b.domain(MS).RotaryEmbedding(x, inputs.positionIds, cos, sin, { num_heads: heads, interleaved }));

  return ({ q, k, v, pastKey, pastValue }) => {
    const caches = fused ? [cos, sin] : [];
    const node = b.node("GroupQueryAttention", [rotate(q, spec.heads), rotate(k, spec.kvHeads), v, pastKey, pastValue, seqlensK, totalLength, ...caches], {
      domain: MS,
      outputs: 3,
      attributes: {
        num_heads: spec.heads,
        kv_num_heads: spec.kvHeads,
        scale: float(attentionScale(spec)),
        do_rotary: fused ? 1 : 0,
        rotary_interleaved: fused ? interleaved : undefined,
      },
    });
    return { output: node.output(0), presentKey: node.output(1), presentValue: node.output(2) };
  };
}

/** MultiHeadAttention with the causal+padding mask as an additive attention_bias [B, 1, S, T]. */
function multiHeadAttention(b: Builder, spec: AttentionSpec, inputs: DecoderInputs): (layer: LayerAttentionInputs) => LayerAttentionOutputs {
  const bias = additiveMask(b, visibilityMask(b, inputs));
  return ({ q, k, v, pastKey, pastValue }) => {
    const node = b.node("MultiHeadAttention", [q, k, v, undefined, undefined, bias, pastKey, pastValue], {
      domain: MS,
      outputs: 3,
      attributes: { num_heads: spec.heads, scale: float(attentionScale(spec)) },
    });
    return { output: node.output(0), presentKey: node.output(1), presentValue: node.output(2) };
  };
}
