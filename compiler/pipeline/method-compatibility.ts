import type { CheckedStage } from "../../dsl/check.ts";
import type { Diagnostics } from "../../dsl/diagnostics.ts";
import { STREAMING_LLM, TREE_ATTENTION_MASK } from "./implementations.ts";
import type { GraphPassStep, ModelNode } from "./ir.ts";

/**
 * Which sparse-attention and KV methods a stage may combine with speculative decoding. Every
 * speculation method verifies drafts in one model call with several queries; it is lossless only
 * if each of those queries attends to exactly the keys a one-token step at its position would.
 *
 * - `attention: tidal | tokenselect` select keys from one query's scores and attend densely in a
 *   step with several queries (as they must for the prompt), so a verification step would see
 *   every key and its tokens would differ from the method's alone: refused.
 * - `kv: streaming` keeps a fixed key set per position (the sinks and the recent window), which
 *   a per-query mask expresses: the target model gets the tree-attention-mask pass ahead of
 *   streaming-llm, and the runtime feeds each query its window (runtime/tree-attention.ts) and
 *   evicts only after verification rolled back what it rejected.
 */
const SELECTS_PER_QUERY: Readonly<Record<string, string>> = {
  tidal: "TidalDecode picks the keys from one query's scores",
  tokenselect: "TokenSelect's heads vote on the keys with one query's scores",
};

/**
 * Checks the stage's sparse methods against its speculation (errors at the `speculate:` value)
 * and, for `kv: streaming`, puts the per-query mask on the target's passes. False on an error.
 */
export function composeSparseWithSpeculation(s: CheckedStage, target: ModelNode, diags: Diagnostics): boolean {
  const speculate = s.methods["speculate"]!;
  if (speculate.method === "none") return true;
  const attention = s.methods["attention"]!;
  const why = SELECTS_PER_QUERY[attention.method];
  if (why) {
    const message = `speculate: ${speculate.method} cannot be combined with attention: ${attention.method}: ${why}, and a step verifying a draft scores several queries at once, so it would attend to every key and its tokens would differ from attention: ${attention.method} alone`;
    diags.error(message, speculate.span ?? s.span);
    return false;
  }
  if (s.methods["kv"]!.method === "streaming") target.passes = maskBeforeStreaming(target.passes, `${s.name}.speculate: ${speculate.method}`);
  return true;
}

/** The passes with tree-attention-mask first among the attention passes (streaming-llm then gathers the mask with its keys). */
function maskBeforeStreaming(passes: GraphPassStep[], origin: string): GraphPassStep[] {
  if (!passes.some((p) => p.pass === STREAMING_LLM)) return passes;
  const mask = passes.find((p) => p.pass === TREE_ATTENTION_MASK) ?? { pass: TREE_ATTENTION_MASK, options: {}, origin, lossy: false, onAttention: true };
  const rest = passes.filter((p) => p !== mask);
  const at = rest.findIndex((p) => p.onAttention);
  return [...rest.slice(0, at), mask, ...rest.slice(at)];
}
