import { printParam } from "../../dsl/print.ts";
import type { ParamValue } from "../../dsl/schema.ts";
import type { Budget } from "../../passes/sparse-attention/budget.ts";
import type { DraftSettings, Params } from "./method.ts";

/** A checked `budget` parameter as the sparse passes take it. */
export function budgetOf(value: ParamValue): Budget {
  return typeof value === "number" ? { tokens: value } : { percent: (value as { percent: number }).percent };
}

/** A checked `budget` parameter as the runtime's pruning budget. */
export function keepOf(value: ParamValue): { count: number } | { percent: number } {
  return typeof value === "number" ? { count: value } : (value as { percent: number });
}

/** A checked `auto-or-int` parameter. */
export function countOrAuto(value: ParamValue): number | "auto" {
  return value as number | "auto";
}

/** Every parameter as `--passes` option text, in the method's order: what pipeline.ir and the manifest show. */
export function paramText(params: Params): Record<string, string> {
  return Object.fromEntries(Object.entries(params).map(([k, v]) => [k, printParam(v)]));
}

/** A checked `draft-length` parameter as the runtime's `draftLength` (and `adaptive` bounds). */
export function draftLength(value: ParamValue): Pick<DraftSettings, "draftLength" | "adaptive"> {
  return typeof value === "number" ? { draftLength: value } : { draftLength: "adaptive", adaptive: (value as { adaptive: { threshold: number; min: number; max: number } }).adaptive };
}
