import type { ModelFacts } from "../../dsl/facts.ts";
import type { MethodUse } from "../../dsl/method.ts";
import { printParam } from "../../dsl/print.ts";
import { MIN_LOGITS_FOR_IDS } from "../../runtime/ids-or-logits.ts";

/**
 * How each method a .pipe can request is carried out in this build. A method without an entry
 * (or whose graph pass is not registered) fails to compile with "not implemented in this build";
 * supporting a new method is adding its entry here.
 */
export type Implementation =
  | { level: "none" }
  | { level: "runtime" }
  | {
      level: "graph";
      pass: string;
      options: (use: MethodUse, facts: ModelFacts) => Record<string, string>;
      /** The pass rewrites canonical attention nodes: lift-attention runs before it and lower-attention after. */
      onAttention?: true;
    };

/** The passes that bring attention into and out of the canonical form the attention passes rewrite. */
export const LIFT_ATTENTION = "lift-attention";
export const LOWER_ATTENTION = "lower-attention";
/** The pass that derives `speculate: self`'s draft model (lower.ts adds that model to the pipeline). */
export const SELF_DRAFT = "self-draft";
/** Passes that compiler/pipeline/method-compatibility.ts orders when kv: streaming meets speculation. */
export const TREE_ATTENTION_MASK = "tree-attention-mask";
export const STREAMING_LLM = "streaming-llm";

/**
 * Greedy speculation decides by the target's argmax (Token Recycling by its top-k successors):
 * the logits-topk pass computes those in the graph, so plain and verification steps fetch ids
 * instead of [S, V] logits (on a small model the host work on logits costs as much as the call).
 * The pass only adds outputs; a stage that samples reads the logits and gets no such pass.
 * Below the runtime's MIN_LOGITS_FOR_IDS ids it adds nothing (min_vocab): there the host's argmax
 * is as fast, and the graph's would run on every plain step, fetched or not.
 */
export const LOGITS_TOPK = "logits-topk";

/** The logits-topk options a stage's speculation needs, or undefined when it needs none. */
export function speculationIds(speculate: MethodUse, sampling: MethodUse): Record<string, string> | undefined {
  if (speculate.method === "none" || sampling.method !== "greedy") return undefined;
  // Token Recycling's top-k already starts with the argmax: a second kernel would run on every call for nothing.
  const minVocab = String(MIN_LOGITS_FOR_IDS);
  if (speculate.method === "recycle") return { k: printParam(speculate.params["top_k"]!), argmax: "false", min_vocab: minVocab };
  return { k: "0", argmax: "true", min_vocab: minVocab };
}

/** Every parameter as pass option text, in the schema's order. */
function allParams(use: MethodUse): Record<string, string> {
  return Object.fromEntries(Object.entries(use.params).map(([k, v]) => [k, printParam(v)]));
}

/** A sparse-attention method's parameters, and the append-only KV contract where the model allows it. */
function withAppendOnlyCache(use: MethodUse): Record<string, string> {
  return { ...allParams(use), kv_append_only: "true" };
}

export const IMPLEMENTATIONS: Readonly<Record<string, Implementation>> = {
  "kv.full": { level: "none" },
  "attention.dense": { level: "none" },
  "speculate.none": { level: "none" },
  "prune.none": { level: "none" },
  "sampling.greedy": { level: "runtime" },
  "sampling.sample": { level: "runtime" },
  // Visual token pruning runs in the runtime between the vision encoder and the decoder (runtime/vision/prune/).
  "prune.divprune": { level: "runtime" },
  "prune.todre": { level: "runtime" },
  "prune.globalcom2": { level: "runtime" },
  // Speculation is the runtime's Speculator; the driver passes it the stage's settings.
  "speculate.lookup": { level: "runtime" },
  "speculate.draft": { level: "runtime" },
  // Token Recycling verifies a token tree in one call: the target gets tree_attention_mask and
  // position_ids inputs; the runtime's TokenRecycling drafts and verifies.
  "speculate.recycle": { level: "graph", pass: TREE_ATTENTION_MASK, options: () => ({}), onAttention: true },
  // Sparse attention rewrites the model's attention; they compile as soon as their passes are registered.
  // kv_append_only: where the model allows, the cache is append-only too, so no layer concatenates
  // it and the sparse layers read only their selected past rows (bench/README.md, sparse section).
  "attention.tidal": { level: "graph", pass: "tidal", options: withAppendOnlyCache, onAttention: true },
  "attention.tokenselect": { level: "graph", pass: "tokenselect", options: withAppendOnlyCache, onAttention: true },
  // StreamingLLM: the graph attends to sinks + window; the driver passes the same numbers to the runtime, which evicts
  // (an append-only cache too: it gathers and compacts its buffer). With speculation's tree mask the pass keeps the present cache.
  "kv.streaming": { level: "graph", pass: STREAMING_LLM, options: withAppendOnlyCache, onAttention: true },
};
