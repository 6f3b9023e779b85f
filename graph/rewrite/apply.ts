import type { Graph } from "../ir/graph.ts";
import { Model } from "../ir/model.ts";
import { commitMatch } from "./commit.ts";
import { topGraphs, withSubgraphs } from "./graphs.ts";
import type { Rule, RuleContext } from "./rule.ts";
import { RuleRunner } from "./rule-runner.ts";
import type { RewriteStats } from "./stats.ts";

export interface ApplyOptions {
  /** Sweeps over the graph at most; default 16. */
  maxIterations?: number;
  /** Also rewrite inside If/Loop/Scan bodies; default true. */
  subgraphs?: boolean;
  /** Record, for each rule that rewrote nothing, its best partial match (`stats.rules[i].nearMiss`). */
  trace?: boolean;
}

/**
 * Applies `rules` until none matches or `maxIterations` sweeps have run. A sweep visits every
 * node once and tries only the rules whose pattern can be rooted at that node's op (an op-indexed
 * table), in the order given; the first rule that rewrites a node wins. Nodes a rewrite creates
 * are looked at in the next sweep, so a sweep costs O(nodes) and the whole run is linear in the
 * graph size times the (small) number of sweeps.
 */
export function applyRules(target: Graph | Model, rules: readonly Rule[], opts: ApplyOptions = {}): RewriteStats {
  const model = target instanceof Model ? target : undefined;
  const runners = rules.map((r) => new RuleRunner(r, opts.trace));
  const byRootOp = indexByRootOp(runners);
  const stats: RewriteStats = { iterations: 0, rewrites: 0, rules: runners.map((r) => r.stats) };
  const maxIterations = opts.maxIterations ?? 16;
  while (stats.iterations < maxIterations) {
    stats.iterations++;
    let rewrites = 0;
    for (const top of topGraphs(target)) {
      for (const graph of withSubgraphs(top, opts.subgraphs ?? true)) rewrites += sweep(graph, { graph, model }, byRootOp);
    }
    stats.rewrites += rewrites;
    if (rewrites === 0) break;
  }
  if (opts.trace) {
    for (const r of runners) if (r.stats.rewritten === 0 && r.nearMiss) r.stats.nearMiss = r.nearMiss;
  }
  return stats;
}

function sweep(graph: Graph, ctx: RuleContext, byRootOp: Map<string, RuleRunner[]>): number {
  let rewrites = 0;
  for (const node of graph.nodeArray()) {
    const candidates = byRootOp.get(node.qualifiedOp);
    if (!candidates) continue;
    for (const runner of candidates) {
      if (node.graph !== graph) break; // removed by an earlier rewrite in this sweep
      const start = performance.now();
      const match = runner.tryAt(node, ctx);
      if (match) {
        commitMatch(runner.rule, match);
        runner.stats.rewritten++;
        rewrites++;
      }
      runner.stats.timeMs += performance.now() - start;
      if (match) break;
    }
  }
  return rewrites;
}

/** For each op key, the runners whose pattern may be rooted at a node of that op, in rule order. */
export function indexByRootOp(runners: readonly RuleRunner[]): Map<string, RuleRunner[]> {
  const index = new Map<string, RuleRunner[]>();
  for (const r of runners) {
    for (const key of r.rootKeys) {
      const list = index.get(key);
      if (list) list.push(r);
      else index.set(key, [r]);
    }
  }
  return index;
}
