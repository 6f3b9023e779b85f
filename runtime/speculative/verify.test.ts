// Chain verification: greedy takes the matching prefix plus the target's token; sampling
// keeps the target's distribution exactly, checked by chi-square over 20,000 draws of the
// first two tokens of a synthetic target/draft pair whose distributions depend on the prefix.
import { describe, expect, it } from "vitest";
import { createRng, type Rng } from "../sampling/rng.ts";
import { prefixDistribution } from "../../test/helpers/prefix-distribution.ts";
import { sampleProbabilities, verifyGreedy, verifySampled } from "./verify.ts";

const V = 8;
const SAMPLES = 20_000;

const distribution = (prefix: readonly number[], salt: number, sharpness: number) => prefixDistribution(prefix, V, salt, sharpness);

const target = (prefix: readonly number[]) => distribution(prefix, 1, 3);
const draftModel = (prefix: readonly number[]) => distribution(prefix, 2, 3);

/** Decodes `count` tokens speculatively with a k-token sampled draft; `rule` verifies one step. */
function speculativeTokens(count: number, k: number, rng: Rng, draftRng: Rng, deterministicDraft = false): number[] {
  const out: number[] = [];
  while (out.length < count) {
    const draft: number[] = [];
    const probs: Float32Array[] = [];
    for (let i = 0; i < k; i++) {
      const q = draftModel([...out, ...draft]);
      // A deterministic source proposes the draft's mode; q is then one-hot (probs left out).
      draft.push(deterministicDraft ? q.indexOf(Math.max(...q)) : sampleProbabilities(q, draftRng));
      probs.push(q);
    }
    const verdict = verifySampled(draft, deterministicDraft ? undefined : probs, (i) => target([...out, ...draft.slice(0, i)]), rng);
    out.push(...draft.slice(0, verdict.accepted), verdict.next);
  }
  return out.slice(0, count);
}

/** Upper tail of chi-square with `dof` degrees of freedom (Wilson-Hilferty; accurate to ~1e-3 here). */
function chiSquarePValue(statistic: number, dof: number): number {
  const z = (Math.cbrt(statistic / dof) - (1 - 2 / (9 * dof))) / Math.sqrt(2 / (9 * dof));
  return 0.5 * erfc(z / Math.SQRT2);
}

function erfc(x: number): number {
  // Numerical Recipes erfc (fractional error < 1.2e-7).
  const t = 1 / (1 + 0.5 * Math.abs(x));
  const y = t * Math.exp(-x * x - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851413 + t * (-0.82215223 + t * 0.17087277)))))))));
  return x >= 0 ? y : 2 - y;
}

/** Chi-square p-value of observed pairs (a, b) against the target's exact joint p(a) p(b | a). */
function pairPValue(pairs: number[][]): number {
  const counts = new Float64Array(V * V);
  for (const [a, b] of pairs) counts[a * V + b]++;
  const first = target([]);
  let statistic = 0;
  for (let a = 0; a < V; a++) {
    const second = target([a]);
    for (let b = 0; b < V; b++) {
      const expected = first[a] * second[b] * pairs.length;
      statistic += (counts[a * V + b] - expected) ** 2 / expected;
    }
  }
  return chiSquarePValue(statistic, V * V - 1);
}

describe("greedy verification", () => {
  it("accepts the matching prefix and appends the target's token", () => {
    const choices = [5, 6, 9, 1];
    expect(verifyGreedy([5, 6, 7], (i) => choices[i])).toEqual({ accepted: 2, next: 9 });
    expect(verifyGreedy([5, 6, 9], (i) => choices[i])).toEqual({ accepted: 3, next: 1 });
    expect(verifyGreedy([4], (i) => choices[i])).toEqual({ accepted: 0, next: 5 });
    expect(verifyGreedy([], (i) => choices[i])).toEqual({ accepted: 0, next: 5 });
  });
});

describe("sampling verification is lossless", () => {
  it("sampled drafts (q from a different model): the first two tokens follow the target", () => {
    const rng = createRng(7), draftRng = createRng(8);
    const pairs = Array.from({ length: SAMPLES }, () => speculativeTokens(2, 3, rng, draftRng));
    expect(pairValueOk(pairPValue(pairs))).toBe(true);
  });

  it("deterministic drafts (q one-hot, as prompt lookup): the first two tokens follow the target", () => {
    const rng = createRng(9), draftRng = createRng(10);
    const pairs = Array.from({ length: SAMPLES }, () => speculativeTokens(2, 2, rng, draftRng, true));
    expect(pairValueOk(pairPValue(pairs))).toBe(true);
  });

  it("the test has power: accepting every draft token would follow the draft and is rejected", () => {
    const rng = createRng(11);
    const pairs = Array.from({ length: SAMPLES }, () => {
      const a = sampleProbabilities(draftModel([]), rng);
      return [a, sampleProbabilities(draftModel([a]), rng)];
    });
    expect(pairPValue(pairs)).toBeLessThan(1e-9);
  });

  it("a draft identical to the target is always accepted", () => {
    const rng = createRng(12);
    const p = target([]);
    for (let i = 0; i < 200; i++) {
      const x = sampleProbabilities(p, rng);
      expect(verifySampled([x], [p], () => p, rng).accepted).toBe(1);
    }
  });
});

/** Fixed seeds make the p-values deterministic; 1e-3 leaves room for an honest draw and none for a biased rule. */
function pairValueOk(pValue: number): boolean {
  if (!(pValue > 1e-3)) console.error(`chi-square p-value ${pValue}`);
  return pValue > 1e-3;
}
