import type { Graph } from "../ir/graph.ts";
import { Model } from "../ir/model.ts";
import { compilePattern, type PatternFn } from "./compile.ts";
import { topGraphs, withSubgraphs } from "./graphs.ts";
import type { Match } from "./match.ts";
import { Matcher } from "./matcher.ts";
import type { Rule } from "./rule.ts";
import { RuleRunner } from "./rule-runner.ts";

/**
 * Where a pattern matches, or where a rule would rewrite (its pattern matches, no intermediate
 * value escapes and its check accepts), without changing anything. Matches may overlap.
 * Searches subgraphs too unless `subgraphs: false`.
 */
export function findMatches(target: Graph | Model, query: PatternFn | Rule, opts: { subgraphs?: boolean } = {}): Match[] {
  const model = target instanceof Model ? target : undefined;
  const runner = typeof query === "function" ? undefined : new RuleRunner(query);
  const matcher = runner?.matcher ?? new Matcher(compilePattern(query as PatternFn));
  const rootKeys = matcher.pattern.rootKeys;
  const found: Match[] = [];
  for (const top of topGraphs(target)) {
    for (const graph of withSubgraphs(top, opts.subgraphs ?? true)) {
      for (const node of graph.nodes()) {
        if (!rootKeys.has(node.qualifiedOp)) continue;
        const m = runner ? runner.tryAt(node, { graph, model }) : matcher.matchAt(node);
        if (m) found.push(m);
      }
    }
  }
  return found;
}
