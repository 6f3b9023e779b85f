// Chain verification (Leviathan et al., ICML 2023; Chen et al. 2023). The target scored the
// last decided token followed by the k draft tokens in one call; row i of its output is
// the distribution of the token after draft[0..i). Both rules are lossless: greedy yields
// exactly the target's argmax chain, sampling yields tokens distributed exactly as the
// target's warped distribution.
import type { Rng } from "../sampling/rng.ts";

export interface Verdict {
  /** Draft tokens accepted (a prefix of the draft). */
  accepted: number;
  /** The token after them: the target's correction on a rejection, its bonus token when all were accepted. */
  next: number;
}

/** Greedy: the longest draft prefix that equals the target's choice, then the target's choice after it. */
export function verifyGreedy(draft: readonly number[], targetChoice: (row: number) => number): Verdict {
  let n = 0;
  while (n < draft.length && targetChoice(n) === draft[n]) n++;
  return { accepted: n, next: targetChoice(n) };
}

/**
 * Sampling: accept draft[i] with probability min(1, p(x) / q(x)); on the first rejection draw
 * from normalise(max(0, p - q)); when all are accepted draw the bonus token from the last row.
 * `draftProbs` absent means a deterministic draft (q is one-hot on the drafted token).
 */
export function verifySampled(
  draft: readonly number[],
  draftProbs: readonly Float32Array[] | undefined,
  targetProbs: (row: number) => Float32Array,
  rng: Rng,
): Verdict {
  for (let i = 0; i < draft.length; i++) {
    const p = targetProbs(i);
    const x = draft[i];
    const q = draftProbs ? draftProbs[i][x] : 1;
    if (rng() < Math.min(1, p[x] / q)) continue;
    return { accepted: i, next: sampleResidual(p, draftProbs?.[i], x, rng) };
  }
  return { accepted: draft.length, next: sampleProbabilities(targetProbs(draft.length), rng) };
}

/** Draws from normalise(max(0, p - q)); q = one-hot(x) when absent. */
function sampleResidual(p: Float32Array, q: Float32Array | undefined, x: number, rng: Rng): number {
  const residual = new Float32Array(p.length);
  let total = 0;
  for (let v = 0; v < p.length; v++) {
    const w = Math.max(0, p[v] - (q ? q[v] : v === x ? 1 : 0));
    residual[v] = w;
    total += w;
  }
  // A rejection is impossible where p <= q everywhere but float rounding can still land here: p itself is then the right law.
  return total > 0 ? sampleWeights(residual, total, rng) : sampleProbabilities(p, rng);
}

export function sampleProbabilities(p: Float32Array, rng: Rng): number {
  let total = 0;
  for (let v = 0; v < p.length; v++) total += p[v];
  return sampleWeights(p, total, rng);
}

function sampleWeights(weights: Float32Array, total: number, rng: Rng): number {
  let r = rng() * total;
  let last = 0;
  for (let v = 0; v < weights.length; v++) {
    if (weights[v] <= 0) continue;
    last = v;
    r -= weights[v];
    if (r < 0) return v;
  }
  return last; // rounding left a sliver of mass: the last candidate takes it
}
