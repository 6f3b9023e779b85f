import type { Node } from "../ir/node.ts";

/**
 * The best partial match of a rule that did not apply: the candidate root whose attempt got
 * furthest, and what stopped it. Candidates that matched the whole pattern but were refused
 * (an escaping intermediate value, then the check) count as further than any that did not.
 */
export interface NearMiss {
  readonly rule: string;
  readonly root: Node;
  /** What refused it: the pattern's structure, an intermediate value used elsewhere, or the check. */
  readonly stage: "structure" | "outside-use" | "check";
  /** Pattern steps matched before it stopped (for comparing candidates). */
  readonly progress: number;
  /** Where it stopped: "input 1 of MatMul", "the root", "check". */
  readonly at: string;
  readonly expected: string;
  /** What was found instead, or the refusal reason. */
  readonly found: string;
}

/** Progress values for refusals after a full structural match: beyond any pattern's size. */
export const OUTSIDE_USE_PROGRESS = 1e9;
export const CHECK_PROGRESS = 1e9 + 1;

export function closer(a: NearMiss | undefined, b: NearMiss): NearMiss {
  return !a || b.progress > a.progress ? b : a;
}

export function formatNearMiss(m: NearMiss): string {
  const outputs = m.root.outputs.filter((v) => v !== undefined).join(", ");
  const head = `rule '${m.rule}' did not match; closest: ${m.root.describe()} -> ${outputs}`;
  if (m.stage === "check") return `${head} matched the pattern, but the check refused: ${m.found}`;
  if (m.stage === "outside-use") return `${head} matched the pattern, but ${m.found}`;
  return `${head} (${m.progress} pattern steps matched), stopped at ${m.at}: expected ${m.expected}, found ${m.found}`;
}
