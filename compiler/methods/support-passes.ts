/** Passes registered on their own (passes/index.ts) that lowering places by name. */

/** The passes that bring attention into and out of the canonical form the attention passes rewrite. */
export const LIFT_ATTENTION = "lift-attention";
export const LOWER_ATTENTION = "lower-attention";
/** The pass that derives `speculate: self`'s draft model. */
export const SELF_DRAFT = "self-draft";
/** Per-query masks for a verification step: Token Recycling's tree, and speculation over `kv: streaming`. */
export const TREE_ATTENTION_MASK = "tree-attention-mask";
/**
 * Greedy speculation decides by the target's argmax (Token Recycling by its top-k successors):
 * the logits-topk pass computes those in the graph, so plain and verification steps fetch ids
 * instead of [S, V] logits (on a small model the host work on logits costs as much as the call).
 * The pass only adds outputs; a stage that samples reads the logits and gets no such pass.
 * Below the runtime's MIN_LOGITS_FOR_IDS ids it adds nothing (min_vocab): there the host's argmax
 * is as fast, and the graph's would run on every plain step, fetched or not.
 */
export const LOGITS_TOPK = "logits-topk";
/** The visual tokens' pairwise cosine distances, an output of the encoder's graph, for the diversity-based pruning methods. */
export const VISUAL_TOKEN_DISTANCES = "visual-token-distances";
