import type { Builder } from "../../ir/builder.ts";
import type { Value } from "../../ir/value.ts";
import { additiveMask, visibilityMask } from "../mask.ts";
import { applyRotary, gatherRotary } from "../rotary.ts";
import { attentionScale, type AttentionEncoder, type AttentionSpec } from "./types.ts";

const TO_HEADS = [0, 2, 1, 3]; // [B, S, H, D] <-> [B, H, S, D]

/**
 * Attention spelled out as Optimum / torch.onnx export it: per-head reshapes, rotary by
 * Slice/Neg/Concat, the cache grown by Concat on axis 2, K/V repeated for GQA by
 * Unsqueeze/Expand/Reshape, then MatMul, scale, additive mask, Softmax, MatMul.
 */
export const decomposedAttention: AttentionEncoder = (b, spec, inputs) => {
  const mask = additiveMask(b, visibilityMask(b, inputs));
  const rot = spec.rotary && gatherRotary(b, inputs.positionIds, spec.headDim, spec.rotary.maxPositions, spec.rotary.theta, spec.rotary.layout);
  const toHeads = (x: Value, heads: number) => b.op.Transpose(b.op.Reshape(x, b.int64([0, 0, heads, spec.headDim])), { perm: TO_HEADS });
  const rotate = (x: Value) => (rot && spec.rotary ? applyRotary(b, x, rot, spec.headDim, spec.rotary.layout) : x);

  return ({ q, k, v, pastKey, pastValue }) => {
    const query = rotate(toHeads(q, spec.heads)); // [B, H, S, D]
    const presentKey = b.op.Concat(pastKey, rotate(toHeads(k, spec.kvHeads)), { axis: 2 }); // [B, Hkv, T, D]
    const presentValue = b.op.Concat(pastValue, toHeads(v, spec.kvHeads), { axis: 2 });
    const key = repeatKv(b, presentKey, spec);
    const value = repeatKv(b, presentValue, spec);
    const scores = scale(b, b.op.MatMul(query, b.op.Transpose(key, { perm: [0, 1, 3, 2] })), spec); // [B, H, S, T]
    const probs = b.op.Softmax(b.op.Add(scores, mask), { axis: -1 });
    const context = b.op.Transpose(b.op.MatMul(probs, value), { perm: TO_HEADS }); // [B, S, H, D]
    return { output: b.op.Reshape(context, b.int64([0, 0, -1])), presentKey, presentValue };
  };
};

/** [B, Hkv, T, D] -> [B, H, T, D], each KV head serving H/Hkv query heads in a row. */
function repeatKv(b: Builder, x: Value, spec: AttentionSpec): Value {
  const groups = spec.heads / spec.kvHeads;
  if (groups === 1) return x;
  const expanded = b.op.Expand(b.op.Unsqueeze(x, b.int64([2])), b.int64([1, 1, groups, 1, 1])); // [B, Hkv, groups, T, D]
  return b.op.Reshape(expanded, b.int64([0, spec.heads, -1, spec.headDim]));
}

function scale(b: Builder, scores: Value, spec: AttentionSpec): Value {
  return spec.scaleOp === "div" ? b.op.Div(scores, b.float32(Math.sqrt(spec.headDim))) : b.op.Mul(scores, b.float32(attentionScale(spec)));
}
