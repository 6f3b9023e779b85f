import { makeAttribute } from "../../graph/ir/attribute.ts";
import type { Model } from "../../graph/ir/model.ts";
import { inferShapes } from "../../graph/ir/shape-inference/index.ts";
import { TOPOLOGICALLY_SORTED } from "../../graph/pass-manager/properties.ts";
import type { Pass, PassContext, PassResult } from "../../graph/pass-manager/pass.ts";
import { applyRules, formatNearMiss, type RewriteStats } from "../../graph/rewrite/index.ts";
import { createDce } from "../cleanup/dce.ts";
import { CANONICAL_DOMAIN, CANONICAL_DOMAIN_VERSION } from "./canonical.ts";
import { isCanonical, UNKNOWN_LAYER } from "./canonical-node.ts";
import { ATTENTION_RULES } from "./recognize.ts";

export const LIFT_ATTENTION = "lift-attention";

/**
 * Replaces every recognised attention block by one canonical `pipec::Attention` node (plus the
 * standard ops for what a fused op did besides attention: head reshapes, rotary, cache Concat).
 * Stats: `<rule>.rewritten` per encoding and `layers` in total.
 */
export function createLiftAttention(): Pass {
  return {
    name: LIFT_ATTENTION,
    description: "recognise attention in any encoding and lift it to canonical pipec::Attention nodes",
    // New nodes go before the block's last node, after everything they read.
    preserves: [TOPOLOGICALLY_SORTED],
    run(model: Model, ctx: PassContext): PassResult {
      const trace = ctx.options["trace"] === true || ctx.options["trace"] === "true";
      const stats = liftAttention(model, { trace });
      const counters: Record<string, number> = { layers: stats.rewrites };
      for (const r of stats.rules) {
        counters[`${r.rule}.rewritten`] = r.rewritten;
        if (r.rewritten > 0) ctx.note(`${r.rule}: ${r.rewritten} block${r.rewritten === 1 ? "" : "s"}`);
        else if (trace && r.nearMiss) ctx.note(formatNearMiss(r.nearMiss));
      }
      return { changed: stats.rewrites > 0, stats: counters };
    },
  };
}

/** Lifts the main graph's attention blocks in place; the per-rule statistics say which forms matched. */
export function liftAttention(model: Model, opts: { trace?: boolean } = {}): RewriteStats {
  inferShapes(model);
  const stats = applyRules(model, ATTENTION_RULES, { subgraphs: false, trace: opts.trace });
  if (stats.rewrites === 0) return stats;
  model.opsets.set(CANONICAL_DOMAIN, CANONICAL_DOMAIN_VERSION);
  numberLayers(model);
  // Ops the blocks peeled off (a scale on Q, a repeat of K) are left unread.
  createDce().run(model, { options: {}, note: () => {} });
  return stats;
}

/** Blocks whose KV names carry no layer number are numbered by their order in the graph. */
function numberLayers(model: Model): void {
  let order = 0;
  for (const node of model.graph.nodes()) {
    if (!isCanonical(node)) continue;
    if (node.attrInt("layer", UNKNOWN_LAYER) === UNKNOWN_LAYER) node.setAttribute(makeAttribute("layer", order));
    order++;
  }
}
