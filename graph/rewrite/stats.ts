import type { NearMiss } from "./near-miss.ts";

/** What one rule did during `applyRules`. */
export interface RuleStats {
  readonly rule: string;
  /** Candidate roots tried (nodes of a root op of the pattern). */
  tried: number;
  /** Candidates the pattern matched structurally. */
  matched: number;
  /** Matched candidates refused, by the rule's check or because an intermediate value escapes the match. */
  rejected: number;
  /** Refusal reasons and how often each occurred. */
  readonly reasons: Map<string, number>;
  rewritten: number;
  /** Time spent matching, checking and rewriting, in milliseconds. */
  timeMs: number;
  /** With `trace`, for a rule that rewrote nothing: the best partial match. */
  nearMiss?: NearMiss;
}

export interface RewriteStats {
  /** Sweeps over the graphs; the last one found nothing to rewrite unless the limit stopped it. */
  iterations: number;
  /** Total rewrites of all rules. */
  rewrites: number;
  /** One entry per rule, in the order the rules were given. */
  readonly rules: RuleStats[];
}

export function emptyRuleStats(rule: string): RuleStats {
  return { rule, tried: 0, matched: 0, rejected: 0, reasons: new Map(), rewritten: 0, timeMs: 0 };
}

/** A fixed-width table, one row per rule, refusal reasons indented under their rule. */
export function formatStats(stats: RewriteStats): string {
  const header = ["rule", "tried", "matched", "rejected", "rewritten", "ms"];
  const rows = stats.rules.map((r) => [r.rule, String(r.tried), String(r.matched), String(r.rejected), String(r.rewritten), r.timeMs.toFixed(1)]);
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c]!.length)));
  const line = (cells: string[]) => cells.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("  ").trimEnd();
  const out = [line(header), widths.map((w) => "-".repeat(w)).join("  ")];
  stats.rules.forEach((r, i) => {
    out.push(line(rows[i]!));
    for (const [reason, n] of [...r.reasons].sort((a, b) => b[1] - a[1])) out.push(`    ${n} x ${reason}`);
  });
  out.push(`${stats.rewrites} rewrite${stats.rewrites === 1 ? "" : "s"} in ${stats.iterations} iteration${stats.iterations === 1 ? "" : "s"}`);
  return out.join("\n");
}
