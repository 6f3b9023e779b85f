import type { Match } from "../../graph/rewrite/index.ts";
import type { CanonicalAttentionAttrs } from "./canonical.ts";

/**
 * What a recognition rule's check learned about one block: the canonical attributes (head
 * counts, scale, causality, layer, KV names) plus whatever the rewrite needs. The check records
 * it so the rewrite and the report (`findAttentionBlocks`) read the same facts.
 */
export interface LiftPlan {
  readonly attrs: CanonicalAttentionAttrs;
}

const plans = new WeakMap<Match, LiftPlan>();

/** Records the plan and accepts the match (a rule's `check` returns this). */
export function accept(m: Match, plan: LiftPlan): true {
  plans.set(m, plan);
  return true;
}

export function planOf<P extends LiftPlan>(m: Match): P {
  const plan = plans.get(m);
  if (!plan) throw new Error(`no lift plan recorded for the match at ${m.root.describe()}`);
  return plan as P;
}
