import type { Match, RuleContext } from "../../graph/rewrite/index.ts";
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

/** A rule's `check` from its analysis: the plan is recorded and the match accepted, or the reason it refuses is returned. */
export function checkPlan(analyse: (ctx: RuleContext, m: Match) => LiftPlan | string): (ctx: RuleContext, m: Match) => true | string {
  return (ctx, m) => {
    const plan = analyse(ctx, m);
    if (typeof plan === "string") return plan;
    plans.set(m, plan);
    return true;
  };
}

export function planOf<P extends LiftPlan>(m: Match): P {
  const plan = plans.get(m);
  if (!plan) throw new Error(`no lift plan recorded for the match at ${m.root.describe()}`);
  return plan as P;
}
