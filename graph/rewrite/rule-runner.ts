import type { Node } from "../ir/node.ts";
import type { Value } from "../ir/value.ts";
import type { Match } from "./match.ts";
import { Matcher } from "./matcher.ts";
import { CHECK_PROGRESS, OUTSIDE_USE_PROGRESS, closer, type NearMiss } from "./near-miss.ts";
import { rulePattern, type Rule, type RuleContext } from "./rule.ts";
import { emptyRuleStats, type RuleStats } from "./stats.ts";

/**
 * Decides, for one rule, whether it applies at a candidate root: the pattern must match, no
 * intermediate value may be read outside the match, and the check must accept. Counts what it
 * sees in `stats` and, when tracing, keeps the best near miss.
 */
export class RuleRunner {
  readonly stats: RuleStats;
  readonly matcher: Matcher;
  nearMiss: NearMiss | undefined;

  constructor(
    readonly rule: Rule,
    private readonly trace = false,
  ) {
    this.stats = emptyRuleStats(rule.name);
    this.matcher = new Matcher(rulePattern(rule), trace);
  }

  get rootKeys(): ReadonlySet<string> {
    return this.matcher.pattern.rootKeys;
  }

  /** The match the rule would rewrite at `root`, if any. */
  tryAt(root: Node, ctx: RuleContext): Match | undefined {
    this.stats.tried++;
    let matched = false;
    let refusal: { reason: string; stage: NearMiss["stage"] } | undefined;
    const match = this.matcher.matchAt(root, (m) => {
      matched = true;
      const escaping = escapingValue(m);
      if (escaping) {
        refusal = { reason: `intermediate value ${escaping} is used outside the match`, stage: "outside-use" };
        return false;
      }
      const verdict = this.rule.check ? this.rule.check(ctx, m) : true;
      if (verdict !== true) {
        refusal = { reason: verdict === false ? "check returned false" : verdict, stage: "check" };
        return false;
      }
      return true;
    });
    if (matched) this.stats.matched++;
    if (!match && refusal) {
      this.stats.rejected++;
      // Value names differ per site; count outside-use refusals under one reason.
      const key = refusal.stage === "outside-use" ? "intermediate value used outside the match" : refusal.reason;
      this.stats.reasons.set(key, (this.stats.reasons.get(key) ?? 0) + 1);
    }
    if (this.trace && !match) this.noteMiss(root, refusal);
    return match;
  }

  private noteMiss(root: Node, refusal: { reason: string; stage: NearMiss["stage"] } | undefined): void {
    const rule = this.rule.name;
    if (refusal) {
      const progress = refusal.stage === "check" ? CHECK_PROGRESS : OUTSIDE_USE_PROGRESS;
      this.nearMiss = closer(this.nearMiss, { rule, root, stage: refusal.stage, progress, at: refusal.stage, expected: "", found: refusal.reason });
      return;
    }
    const f = this.matcher.failure;
    if (f) this.nearMiss = closer(this.nearMiss, { rule, root, stage: "structure", ...f });
  }
}

/** An output of a matched non-root node that something outside the match reads. */
function escapingValue(m: Match): Value | undefined {
  const inside = new Set(m.nodes);
  for (const node of m.nodes) {
    if (node === m.root) continue;
    for (const out of node.outputs) {
      if (!out) continue;
      if (out.isGraphOutput || out.uses.some((u) => !inside.has(u.node))) return out;
    }
  }
  return undefined;
}
