/**
 * The pattern-rewrite API: rules written as patterns plus check and rewrite functions, applied
 * to a graph or model until nothing matches, queried without rewriting, traced when they miss.
 */
export { applyRules, type ApplyOptions } from "./apply.ts";
export type { PatternFn } from "./compile.ts";
export { findMatches } from "./find.ts";
export { Match, constantInts, constantTensor } from "./match.ts";
export { formatNearMiss, type NearMiss } from "./near-miss.ts";
export { rulesPass } from "./pass.ts";
export {
  ConstantPattern,
  OneOfPattern,
  OpPattern,
  OutputPattern,
  PatternBuilder,
  PatternValue,
  VarPattern,
  type AttrConstraint,
  type AttrConstraints,
  type PatternNodeOptions,
  type PatternOps,
  type Predicate,
} from "./pattern.ts";
export type { Rule, RuleContext } from "./rule.ts";
export { formatStats, type RewriteStats, type RuleStats } from "./stats.ts";
export { traceRule, type TraceOptions, type TraceReport } from "./tracer.ts";
