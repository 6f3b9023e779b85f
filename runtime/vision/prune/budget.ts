// How many of N visual tokens a pruning method keeps: a count, or a percentage of N rounded
// as DivPrune's code does (round(ratio * N)), at least one and at most N.
import { RuntimeError } from "../../errors.ts";

export type KeepBudget = { count: number } | { percent: number };

export function keptCount(keep: KeepBudget, tokens: number): number {
  if ("count" in keep) {
    if (!Number.isInteger(keep.count) || keep.count < 1) throw new RuntimeError("bad-option", `keep must be a positive number of tokens, got ${keep.count}`);
    return Math.min(keep.count, tokens);
  }
  if (!(keep.percent > 0 && keep.percent <= 100)) throw new RuntimeError("bad-option", `keep must be a percentage in (0, 100], got ${keep.percent}%`);
  return Math.min(tokens, Math.max(1, Math.round((keep.percent / 100) * tokens)));
}
