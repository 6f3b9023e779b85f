/**
 * The canonical attention op every recognised attention block is lifted into, whatever encoding
 * the exporter used (decomposed MatMul/Softmax chains, com.microsoft MultiHeadAttention /
 * GroupQueryAttention / Attention, standard Attention-23/24). Sparse-attention and speculative
 * passes rewrite this one form; `lower-attention` turns what is left back into standard ops that
 * stock onnxruntime runs. A model holding canonical nodes is not runnable until lowered.
 *
 *   O = pipec::Attention(Q, K, V, mask?) = softmax(mask(cap(scale * Q.K^T))) V, cap only with softcap
 *     Q    [B, H,   T, D]  queries, rotary already applied
 *     K    [B, Hkv, N, D]  all keys of the context (past and new), rotary applied, NOT repeated to H
 *     V    [B, Hkv, N, D]
 *     mask optional: additive float [B|1, 1|H, T, N] (0 or a large negative), or bool (true = attend)
 *     O    [B, H,   T, D]
 *   Query head h reads KV head floor(h / (H / Hkv)).
 */
export const CANONICAL_DOMAIN = "pipec";
export const CANONICAL_OP = "Attention";
/** The version of the `pipec` domain a model imports once it holds canonical nodes. */
export const CANONICAL_DOMAIN_VERSION = 1;

/** Attributes of a canonical attention node. */
export interface CanonicalAttentionAttrs {
  /** Multiplier of Q.K^T (usually 1/sqrt(D)). */
  scale: number;
  num_heads: number;
  kv_num_heads: number;
  /** Caps the scaled scores before the mask: softcap * tanh(scores / softcap) (Gemma 2). Absent or 0: none. */
  softcap?: number;
  /** 1: keys after the query's own position are masked, aligned bottom-right (query t sees keys <= N - T + t). */
  is_causal: number;
  /** Kind of input 3, when present: "additive" or "boolean". */
  mask_kind?: "additive" | "boolean";
  /** Decoder layer index (0-based), from the KV input/output names or the node order. */
  layer: number;
  /** The encoding the block was lifted from, e.g. "decomposed", "com.microsoft.GroupQueryAttention". */
  source_form: string;
  /** Names of this layer's KV-cache graph inputs and outputs, when the model has them. */
  past_key?: string;
  past_value?: string;
  present_key?: string;
  present_value?: string;
}
