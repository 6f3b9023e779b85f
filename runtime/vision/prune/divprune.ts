// DivPrune (Alvar et al., CVPR 2025): keep the visual tokens that solve the max-min diversity
// problem greedily, as the reference code (vbdi/divprune, llava_arch.py) does: the first pick
// is the token farthest from its nearest neighbour, each next one the token farthest from the
// picked set, by cosine distance of the projected embeddings. The minimum distance to the
// picked set is kept as a running vector, so a pick costs O(N) instead of re-reducing the
// picked rows. Picked tokens are excluded from later picks; the reference relies on their zero
// self-distance instead, which differs only when every remaining distance is <= 0 (duplicate
// tokens), where it would pick a token twice.
import { cosineDistances } from "./cosine.ts";

/**
 * Indices (ascending) of the `keep` tokens DivPrune keeps among the `n` rows of `x` ([n * dim]);
 * `distances` ([n * n]) when the vision encoder computed them (the visual-token-distances pass).
 */
export function divPrune(x: Float32Array, n: number, dim: number, keep: number, distances: Distances = cosineDistances(x, n, dim)): number[] {
  return divPruneOrder(distances, n, keep).sort((a, b) => a - b);
}

export type Distances = Float32Array | Float64Array;

/** Greedy max-min picks on a distance matrix, in pick order; `first` overrides DivPrune's seed (ToDRE seeds with the most important token). */
export function divPruneOrder(d: Distances, n: number, keep: number, first = farthestFromNearest(d, n)): number[] {
  if (keep >= n) return Array.from({ length: n }, (_, i) => i);
  const picked = [first];
  const taken = new Uint8Array(n);
  taken[first] = 1;
  const minDist = d.slice(first * n, first * n + n);
  while (picked.length < keep) {
    let best = -1;
    for (let j = 0; j < n; j++) if (!taken[j] && (best < 0 || minDist[j]! > minDist[best]!)) best = j;
    picked.push(best);
    taken[best] = 1;
    for (let j = 0; j < n; j++) minDist[j] = Math.min(minDist[j]!, d[best * n + j]!);
  }
  return picked;
}

/** The token whose second-smallest distance (the smallest is its own, 0) is largest; the first such on ties. */
function farthestFromNearest(d: Distances, n: number): number {
  let best = 0;
  let bestScore = -Infinity;
  for (let j = 0; j < n; j++) {
    let lo = Infinity;
    let lo2 = Infinity;
    for (let i = 0; i < n; i++) {
      const v = d[i * n + j]!;
      if (v < lo) [lo, lo2] = [v, lo];
      else if (v < lo2) lo2 = v;
    }
    if (lo2 > bestScore) [best, bestScore] = [j, lo2];
  }
  return best;
}
