// The names a compiled model's graph and the runtime agree on: the inputs and outputs a pass adds
// or renames, and those of exported decoders that passes rely on. The passes write them from
// here and the runtime discovers a model's contract from here, so the two cannot drift apart.
// A leaf: it imports nothing, so passes/ may import it without depending on the rest of the
// runtime (test/layering.test.ts allows exactly this file).

// Decoder inputs and outputs as exporters name them (Optimum, onnxruntime-genai).
export const INPUT_IDS = "input_ids";
export const INPUTS_EMBEDS = "inputs_embeds";
export const ATTENTION_MASK = "attention_mask";
export const POSITION_IDS = "position_ids";
export const USE_CACHE_BRANCH = "use_cache_branch";
/** The LM head's scores [B, S, V] (the all-position-logits pass makes S every position). */
export const LOGITS = "logits";

/** Past inputs the runtime treats as a KV cache: `past_key_values.{i}.key|value` [B, Hkv, P, D], or genai GPT-2's stacked `past_{i}` [2, B, H, P, D]. */
export const KV_INPUT = /^past_key_values\.(\d+)\.(key|value)$|^past_(\d+)$/;
export const PAST_KEY_VALUES_PREFIX = "past_key_values.";

export type KvKind = "key" | "value";

export function pastKeyValues(layer: number | string, kind: KvKind): string {
  return `${PAST_KEY_VALUES_PREFIX}${layer}.${kind}`;
}

/** The layer a KV cache input names, or undefined when `name` is not one. */
export function kvInputLayer(name: string): number | undefined {
  const m = KV_INPUT.exec(name);
  return m ? Number(m[1] ?? m[3]) : undefined;
}

/** The whole-cache output fed back as `past_key_values.{suffix}` ([B, Hkv, P + S, D]). */
export function presentOf(pastSuffix: string): string {
  return `present.${pastSuffix}`;
}

/** The append-only contract's output for `past_key_values.{suffix}`: the step's new rows only ([B, Hkv, S, D]; the kv-append-only pass). */
export function appendOnlyOutputOf(pastSuffix: string): string {
  return `present_new.${pastSuffix}`;
}

/** The additive mask [B, 1, S, P + S] a tree-verification step feeds (the tree-attention-mask pass). */
export const TREE_MASK_INPUT = "tree_attention_mask";

/** The logits-topk pass's outputs: the k likeliest ids and their scores [B, S, k], and the argmax [B, S]. */
export const TOPK_VALUES_OUTPUT = "logits_topk_values";
export const TOPK_INDICES_OUTPUT = "logits_topk_indices";
export const ARGMAX_OUTPUT = "logits_argmax";

/**
 * TokenSelect's selection cache, per layer i: inputs `tokenselect_cached_fingerprint.{i}` [H*D]
 * and `tokenselect_cached_indices.{i}` [K] (what the runtime kept), outputs
 * `tokenselect_fingerprint.{i}`, `tokenselect_indices.{i}` and `tokenselect_reused.{i}` (what it keeps next).
 */
export const SELECTION_CACHE = {
  cachedFingerprint: "tokenselect_cached_fingerprint",
  cachedIndices: "tokenselect_cached_indices",
  fingerprint: "tokenselect_fingerprint",
  indices: "tokenselect_indices",
  reused: "tokenselect_reused",
} as const;

export type SelectionCacheValue = keyof typeof SELECTION_CACHE;

export function selectionCacheName(value: SelectionCacheValue, layer: number): string {
  return `${SELECTION_CACHE[value]}.${layer}`;
}

export const SELECTION_CACHE_INPUT = /^tokenselect_cached_(fingerprint|indices)\.(\d+)$/;

/** The int64 [1] output a sparse layer reports how many keys its last query attended on (the sparse passes). */
export const ATTENDED_KEYS_PREFIX = "attended_keys";

export function attendedKeysOutput(method: string, layer: number): string {
  return `${ATTENDED_KEYS_PREFIX}.${method}.${layer}`;
}

export const ATTENDED_KEYS_OUTPUT = /^attended_keys\.([A-Za-z0-9_-]+)\.(\d+)$/;

// A vision encoder's inputs and outputs: pixel_values in, the visual tokens out first, and optionally
// the last layer's [CLS] -> patch attention [B, Nv] and (the visual-token-distances pass) the
// cosine distances between the tokens [B, Nv, Nv].
export const PIXEL_VALUES = "pixel_values";
export const CLS_ATTENTION_OUTPUT = "cls_attention";
export const VISUAL_TOKEN_DISTANCES_OUTPUT = "visual_token_distances";
