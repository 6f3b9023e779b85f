import { PipecError } from "../../graph/errors.ts";
import type { Value } from "../../graph/ir/value.ts";
import type { SparseSite } from "./site.ts";

/** How many keys a sparse layer attends to: a count, or a share of the context (`12.5%`). */
export type Budget = { tokens: number } | { percent: number };

/** Reads a budget option as a .pipe writes it: `256` or `12.5%`. */
export function parseBudget(text: string, where: string): Budget {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(%?)\s*$/.exec(text);
  const n = m ? Number(m[1]) : NaN;
  if (!m || (m[2] ? !(n > 0 && n <= 100) : !(Number.isInteger(n) && n >= 1))) {
    throw new PipecError("pass-option", `${where}: budget '${text}' is neither a token count (>= 1) nor a percentage in (0, 100]`);
  }
  return m[2] ? { percent: n } : { tokens: n };
}

export function formatBudget(budget: Budget): string {
  return "tokens" in budget ? String(budget.tokens) : `${budget.percent}%`;
}

/** int64 [1]: the budget in keys at this step's context length (the keys visible to it; a share rounds up). */
export function budgetTokens(site: SparseSite, budget: Budget): Value {
  const b = site.b;
  if ("tokens" in budget) return b.int64([budget.tokens]);
  const N_1 = site.visible_1();
  // ceil(N * percent / 100) in integers: percent carries at most 3 decimals.
  const numerator = Math.round(budget.percent * 1000);
  const denominator = 100_000;
  return b.op.Div(b.op.Add(b.op.Mul(N_1, b.int64([numerator])), b.int64([denominator - 1])), b.int64([denominator]));
}
