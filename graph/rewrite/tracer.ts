import type { Graph } from "../ir/graph.ts";
import { Model } from "../ir/model.ts";
import type { Node } from "../ir/node.ts";
import { topGraphs, withSubgraphs } from "./graphs.ts";
import type { Match } from "./match.ts";
import { formatNearMiss, type NearMiss } from "./near-miss.ts";
import type { Rule } from "./rule.ts";
import { RuleRunner } from "./rule-runner.ts";

export interface TraceOptions {
  /** Only consider roots at `near` or downstream of it, as far as the pattern reaches. */
  near?: Node;
}

/** Why a rule does (or does not) apply, as data and as text. */
export interface TraceReport {
  readonly rule: string;
  /** Where the rule would rewrite. */
  readonly matches: Match[];
  /** Candidate roots tried (nodes of a root op of the pattern). */
  readonly candidates: number;
  /** The attempt that got furthest, when nothing matched. */
  readonly nearMiss: NearMiss | undefined;
  readonly text: string;
}

/**
 * Answers "why doesn't it match?": tries the rule everywhere (subgraphs included) or near a
 * node, and reports the best partial match.
 */
export function traceRule(target: Graph | Model, rule: Rule, opts: TraceOptions = {}): TraceReport {
  const model = target instanceof Model ? target : undefined;
  const runner = new RuleRunner(rule, true);
  const { rootKeys, height } = runner.matcher.pattern;
  const roots = (opts.near ? downstream(opts.near, height) : allNodes(target)).filter((n) => rootKeys.has(n.qualifiedOp));
  const matches: Match[] = [];
  for (const root of roots) {
    const m = runner.tryAt(root, { graph: root.graph!, model });
    if (m) matches.push(m);
  }
  const nearMiss = matches.length === 0 ? runner.nearMiss : undefined;
  return { rule: rule.name, matches, candidates: roots.length, nearMiss, text: describe(rule.name, matches, roots.length, nearMiss, [...rootKeys], opts.near) };
}

function describe(rule: string, matches: Match[], candidates: number, nearMiss: NearMiss | undefined, rootOps: string[], near: Node | undefined): string {
  if (matches.length > 0) {
    const where = matches.slice(0, 5).map((m) => m.root.describe());
    return `rule '${rule}' matches at ${matches.length} place${matches.length === 1 ? "" : "s"}: ${where.join(", ")}${matches.length > 5 ? ", ..." : ""}`;
  }
  if (candidates === 0 || !nearMiss) {
    const scope = near ? ` at or downstream of ${near.describe()}` : "";
    return `rule '${rule}' did not match: no ${rootOps.join(" or ")} node${scope} to root the pattern at`;
  }
  return `${formatNearMiss(nearMiss)} (${candidates} candidate${candidates === 1 ? "" : "s"} tried)`;
}

function allNodes(target: Graph | Model): Node[] {
  return topGraphs(target).flatMap((top) => [...withSubgraphs(top, true)].flatMap((g) => g.nodeArray()));
}

/** `start` and the nodes reading its results, up to `depth` steps away, in the same graph. */
function downstream(start: Node, depth: number): Node[] {
  const seen = new Set([start]);
  let frontier = [start];
  for (let d = 0; d < depth && frontier.length > 0; d++) {
    const next: Node[] = [];
    for (const n of frontier) {
      for (const out of n.outputs) {
        for (const use of out?.uses ?? []) {
          if (use.node.graph === start.graph && !seen.has(use.node)) {
            seen.add(use.node);
            next.push(use.node);
          }
        }
      }
    }
    frontier = next;
  }
  return [...seen];
}
