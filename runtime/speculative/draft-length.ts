// How many draft tokens to verify. Fixed, or adaptive: SpecDec++'s stopping rule (stop once
// the chance of at least one rejection exceeds a threshold; Huang, Guo, Wang, COLM 2025), driven by the
// draft's own probabilities instead of a trained head, and a cost guard that keeps only the
// draft prefix whose expected tokens per millisecond beat plain decoding's.
import type { CostModel } from "./cost-model.ts";

export interface AdaptiveLength {
  /** Stop drafting once P(at least one rejection) exceeds this (SpecDec++ default 0.3). */
  threshold: number;
  min: number;
  max: number;
}

export const ADAPTIVE_DEFAULTS: AdaptiveLength = { threshold: 0.3, min: 2, max: 20 };

/** After drafting `step` tokens whose confidences multiply to `cumulative`: stop here? */
export function shouldStop(step: number, cumulative: number, rule: AdaptiveLength): boolean {
  if (step >= rule.max) return true;
  if (step < rule.min) return false;
  return 1 - cumulative > rule.threshold;
}

/** Tokens one verification call yields when draft token i is accepted with probability alphas[i] given its predecessors were. */
export function expectedTokens(alphas: readonly number[], k: number): number {
  let expected = 1;
  let chain = 1;
  for (let i = 0; i < k; i++) {
    chain *= alphas[i];
    expected += chain;
  }
  return expected;
}

/**
 * The draft length k <= alphas.length with the most expected tokens per millisecond, counting one
 * call of k + 1 tokens plus `draftMsPerToken` per draft token still to be made; 0 when plain
 * decoding (one call, one token) is faster than every k.
 */
export function bestLength(alphas: readonly number[], cost: CostModel, draftMsPerToken: number): number {
  let best = 0;
  let bestRate = 1 / cost.callMs(1);
  for (let k = 1; k <= alphas.length; k++) {
    const rate = expectedTokens(alphas, k) / (cost.callMs(k + 1) + k * draftMsPerToken);
    if (rate > bestRate) {
      best = k;
      bestRate = rate;
    }
  }
  return best;
}

/**
 * Running estimate of the chance that a draft token is accepted given its predecessors were.
 * Each verification is a run of Bernoulli trials up to the first rejection; old runs fade so the
 * estimate follows the text (a copied passage, then free writing).
 */
export class AcceptanceEstimate {
  private accepted = 1;
  private trials = 2;

  constructor(private readonly decay = 0.9) {}

  get alpha(): number {
    return this.accepted / this.trials;
  }

  record(drafted: number, accepted: number): void {
    if (drafted === 0) return;
    this.accepted = this.accepted * this.decay + accepted;
    this.trials = this.trials * this.decay + accepted + (accepted < drafted ? 1 : 0);
  }
}
