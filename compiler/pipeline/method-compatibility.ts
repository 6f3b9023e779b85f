import type { CheckedStage } from "../../dsl/check.ts";
import type { Diagnostics } from "../../dsl/diagnostics.ts";
import type { PassRegistry } from "../../graph/pass-manager/registry.ts";
import { methodOf } from "../methods/index.ts";
import { TREE_ATTENTION_MASK } from "../methods/support-passes.ts";
import type { GraphPassStep, ModelNode } from "./ir.ts";
import { supportPassStep } from "./pass-steps.ts";

/**
 * Which sparse-attention and KV methods a stage may combine with speculative decoding, as their
 * method table entries say (`withSpeculation`). Every speculation method verifies drafts in one
 * model call with several queries; it is lossless only if each of those queries attends to
 * exactly the keys a one-token step at its position would.
 *
 * - A method that selects keys from one query's scores (`attention: tidal | tokenselect`)
 *   attends densely in a step with several queries (as it must for the prompt), so a
 *   verification step would see every key and its tokens would differ from the method's alone:
 *   refused.
 * - A method that keeps a fixed key set per position (`kv: streaming`: the sinks and the recent
 *   window) is what a per-query mask expresses: the target model gets the tree-attention-mask
 *   pass ahead of the method's pass, and the runtime feeds each query its window
 *   (runtime/tree-attention.ts) and evicts only after verification rolled back what it rejected.
 */
const SPARSE_SLOTS = ["kv", "attention"] as const;

/**
 * Checks the stage's sparse methods against its speculation (errors at the `speculate:` value)
 * and puts the per-query mask on the target's passes where a method asks for it. False on an error.
 */
export function composeSparseWithSpeculation(s: CheckedStage, target: ModelNode, registry: PassRegistry, diags: Diagnostics): boolean {
  const speculate = s.methods["speculate"]!;
  if (speculate.method === "none") return true;
  for (const slot of [...SPARSE_SLOTS].reverse()) {
    const use = s.methods[slot]!;
    const rule = methodOf(use).withSpeculation;
    if (rule === undefined || rule === "tree-mask") continue;
    const message = `speculate: ${speculate.method} cannot be combined with ${slot}: ${use.method}: ${rule.refused}, so its tokens would differ from ${slot}: ${use.method} alone`;
    diags.error(message, speculate.span ?? s.span);
    return false;
  }
  for (const slot of SPARSE_SLOTS) {
    const lowering = methodOf(s.methods[slot]!).lowering;
    if (methodOf(s.methods[slot]!).withSpeculation === "tree-mask" && lowering.level === "graph" && "pass" in lowering) {
      target.passes = maskBefore(lowering.pass.name, target.passes, registry, `${s.name}.speculate: ${speculate.method}`);
    }
  }
  return true;
}

/** The passes with tree-attention-mask first among the attention passes (`pass`, the method's, then attends with the mask). */
function maskBefore(pass: string, passes: GraphPassStep[], registry: PassRegistry, origin: string): GraphPassStep[] {
  if (!passes.some((p) => p.pass === pass)) return passes;
  const mask = passes.find((p) => p.pass === TREE_ATTENTION_MASK) ?? supportPassStep(registry, TREE_ATTENTION_MASK, {}, origin, false, true);
  const rest = passes.filter((p) => p !== mask);
  const at = rest.findIndex((p) => p.onAttention);
  return [...rest.slice(0, at), mask, ...rest.slice(at)];
}

/**
 * A speculation method defined for one kind of decoding (its entry's `decoding`) with a stage
 * that decodes the other way: an error at the `speculate:` value. False on an error.
 */
export function checkSpeculationDecoding(s: CheckedStage, diags: Diagnostics): boolean {
  const speculate = s.methods["speculate"]!;
  const needs = methodOf(speculate).decoding;
  const sampling = s.methods["sampling"]!;
  if (!needs || (needs.needs === "sampled") === (methodOf(sampling).runtime?.sampling !== undefined)) return true;
  const wanted = needs.needs === "greedy" ? "sampling: greedy" : "sampled decoding (sampling: sample(...))";
  diags.error(`speculate: ${speculate.method} needs ${wanted}, not sampling: ${sampling.method}: ${needs.why}`, speculate.span ?? s.span);
  return false;
}
