import type { Builder } from "../ir/builder.ts";
import type { Graph } from "../ir/graph.ts";
import type { Model } from "../ir/model.ts";
import type { Value } from "../ir/value.ts";
import { compilePattern, type CompiledPattern, type PatternFn } from "./compile.ts";
import type { Match } from "./match.ts";

/** What a rule's `check` may consult besides the match. */
export interface RuleContext {
  readonly graph: Graph;
  /** The model, when rules are applied to one (for opset versions). */
  readonly model: Model | undefined;
}

/**
 * A rewrite rule: where it applies (`pattern`), whether this occurrence qualifies (`check`) and
 * what replaces it (`rewrite`).
 */
export interface Rule {
  /** Stamped on every node the rule creates (metadata `pipec.rule`) and used in statistics. */
  readonly name: string;
  readonly pattern: PatternFn;
  /** `true` to accept; `false` or a reason (shown by the tracer and counted in stats) to reject. */
  check?(ctx: RuleContext, match: Match): boolean | string;
  /**
   * Builds the replacement with `b` (its nodes go before the matched root) and returns the
   * values that take the place of the root's outputs, in order. The engine redirects the uses
   * and removes the matched nodes that became dead.
   */
  rewrite(b: Builder, match: Match): Value | readonly (Value | undefined)[];
  /** Let every commutative op of the pattern (Add, Mul, ...) match its inputs in either order. */
  readonly commute?: boolean;
}

const compiled = new WeakMap<Rule, CompiledPattern>();

/** The rule's pattern, built once per rule object. */
export function rulePattern(rule: Rule): CompiledPattern {
  let p = compiled.get(rule);
  if (!p) {
    p = compilePattern(rule.pattern, { name: rule.name, commute: rule.commute });
    compiled.set(rule, p);
  }
  return p;
}
