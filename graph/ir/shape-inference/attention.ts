import { addDims, divDims, mulDims } from "../symbolic-dim.ts";
import type { Dim } from "../types.ts";
import type { NodeContext, RuleTable, ShapeRule } from "./context.ts";

/**
 * Fused attention ops. Vocabulary: B batch, S query length, L new key/value length, P past length,
 * T = P + L total key length, H query heads, Hkv key/value heads, D head size (Dv for values).
 */

/** ONNX Attention (opset 23/24): Q/K/V either [B, S, H*D] (with head-count attributes) or [B, H, S, D]. */
const onnxAttention: ShapeRule = (ctx) => {
  const [q, k, v] = [ctx.shape(0), ctx.shape(1), ctx.shape(2)];
  const dtype = ctx.dtype(0);
  const H = q?.length === 4 ? q[1] : ctx.node.attrInt("q_num_heads");
  const Hkv = k?.length === 4 ? k[1] : ctx.node.attrInt("kv_num_heads");
  const B = q?.[0];
  const S = q?.length === 4 ? q[2] : q?.[1];
  const L = k?.length === 4 ? k[2] : k?.[1];
  const D = k?.length === 4 ? k[3] : divDims(k?.[2], Hkv);
  const Dv = v?.length === 4 ? v[3] : divDims(v?.[2], Hkv);
  const T = totalLength(ctx.shape(4), 2, L);
  if (q) ctx.setOutput(0, dtype, q.length === 4 ? [B, H, S, Dv] : [B, S, mulDims(H, Dv)]);
  ctx.setOutput(1, dtype, [B, Hkv, T, D]);
  ctx.setOutput(2, dtype, [B, Hkv, T, Dv]);
  ctx.setOutput(3, dtype, [B, H, S, T]);
};

/** com.microsoft MultiHeadAttention: query [B, S, H*D] (or packed QKV [B, S, H, 3, D]); past_key/value [B, H, P, D]. */
const multiHeadAttention: ShapeRule = (ctx) => {
  const [q, k, v] = [ctx.shape(0), ctx.shape(1), ctx.shape(2)];
  const H = ctx.node.attrInt("num_heads");
  const dtype = ctx.dtype(0);
  const B = q?.[0];
  const S = q?.[1];
  const packed = q?.length === 5;
  const D = packed ? q[4] : k?.length === 4 ? k[3] : divDims((k ?? q)?.[2], H);
  const L = packed ? S : k?.length === 4 ? k[2] : k?.[1];
  const Dv = packed ? q[4] : v?.length === 4 ? v[3] : divDims((v ?? q)?.[2], H);
  // A 4-D key is already the whole cache (cross attention): it is the present as given.
  const T = k?.length === 4 ? L : totalLength(ctx.shape(6), 2, L);
  ctx.setOutput(0, dtype, q ? [B, S, mulDims(H, Dv)] : undefined);
  ctx.setOutput(1, dtype, [B, H, T, D]);
  ctx.setOutput(2, dtype, [B, H, T, Dv]);
  ctx.setOutput(3, dtype, [B, H, S, T]);
};

/**
 * com.microsoft GroupQueryAttention: query [B, S, H*D] (packed QKV [B, S, (H + 2 Hkv) D] when key
 * is omitted), past_key/value [B, Hkv, P, D]. The present cache holds max(P, total_sequence_length)
 * positions: the past buffer when it is shared with present, else the total length.
 */
const groupQueryAttention: ShapeRule = (ctx) => {
  const q = ctx.shape(0);
  const H = ctx.node.attrInt("num_heads");
  const Hkv = ctx.node.attrInt("kv_num_heads");
  const past = ctx.shape(3);
  const dtype = ctx.dtype(0);
  const B = q?.[0];
  const S = q?.[1];
  const D = past?.[3] ?? (ctx.has(1) ? divDims(ctx.shape(1)?.[2], Hkv) : divDims(q?.[2], addDims(H, mulDims(2, Hkv))));
  ctx.setOutput(0, dtype, q ? [B, S, mulDims(H, D)] : undefined);
  const T = presentLength(past?.[2], ctx.knownScalar(6), S);
  ctx.setOutput(1, dtype, [B, Hkv, T, D]);
  ctx.setOutput(2, dtype, [B, Hkv, T, D]);
};

function presentLength(P: Dim, total: Dim, S: Dim): Dim {
  if (typeof P === "number" && typeof total === "number") return Math.max(P, total);
  // Symbolically max(P, T) is T, unless the past buffer is shared with present (only a run shows
  // that); with no known total, an unshared cache grows by the S new positions.
  return total ?? addDims(P, S);
}

/** com.microsoft Attention (GPT-2 style): input [B, S, Din] times packed QKV weights; combined cache [2, B, H, P, D]. */
const packedAttention: ShapeRule = (ctx) => {
  const x = ctx.shape(0);
  const w = ctx.shape(1);
  const H = ctx.node.attrInt("num_heads");
  const sizes = ctx.node.attrInts("qkv_hidden_sizes");
  const dtype = ctx.dtype(0);
  const B = x?.[0];
  const S = x?.[1];
  const hidden = sizes ? sizes[0] : divDims(w?.[1], 3);
  const vHidden = sizes ? sizes[2] : hidden;
  const past = ctx.shape(4);
  ctx.setOutput(0, dtype, x ? [B, S, vHidden] : undefined);
  ctx.setOutput(1, dtype, [2, B, H, past ? addDims(past[3], S) : S, divDims(hidden, H)]);
};

/** T = P + L when a past cache of `past` shape is given (its length on `axis`), else L. */
function totalLength(past: Dim[] | undefined, axis: number, L: Dim): Dim {
  return past ? addDims(past[axis], L) : L;
}

/** RotaryEmbedding (opset 23 and com.microsoft) rotates in place: same type as its input. */
const rotary: ShapeRule = (ctx: NodeContext) => ctx.passThrough(0, 0);

export const attentionRules: RuleTable = {
  Attention: onnxAttention,
  RotaryEmbedding: rotary,
  "com.microsoft::RotaryEmbedding": rotary,
  "com.microsoft::MultiHeadAttention": multiHeadAttention,
  "com.microsoft::GroupQueryAttention": groupQueryAttention,
  "com.microsoft::Attention": packedAttention,
};
