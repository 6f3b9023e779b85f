import type { Pass } from "../pass-manager/pass.ts";
import { applyRules, type ApplyOptions } from "./apply.ts";
import { formatNearMiss } from "./near-miss.ts";
import type { Rule } from "./rule.ts";

/**
 * A rule set as a pass. Its stats report `<rule>.rewritten` per rule and `rewrites` in total;
 * the pass option `trace` (e.g. `--passes 'fuse(trace=true)'`) notes why rules that never fired did not.
 */
export function rulesPass(name: string, description: string, rules: readonly Rule[], opts: ApplyOptions = {}): Pass {
  return {
    name,
    description,
    run(model, ctx) {
      const trace = opts.trace ?? (ctx.options["trace"] === true || ctx.options["trace"] === "true");
      const stats = applyRules(model, rules, { ...opts, trace });
      const counters: Record<string, number> = { rewrites: stats.rewrites };
      for (const r of stats.rules) {
        counters[`${r.rule}.rewritten`] = r.rewritten;
        if (r.rewritten > 0) ctx.note(`${r.rule}: ${r.rewritten} rewrite${r.rewritten === 1 ? "" : "s"}`);
        if (trace && r.rewritten === 0) ctx.note(r.nearMiss ? formatNearMiss(r.nearMiss) : `rule '${r.rule}' did not match: no node to root its pattern at`);
      }
      return { changed: stats.rewrites > 0, stats: counters };
    },
  };
}
