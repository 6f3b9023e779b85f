import { createRng } from "../../runtime/sampling/rng.ts";

/**
 * A distribution over V tokens that depends on the whole prefix (a hash of it seeds the weights),
 * for synthetic target/draft pairs in the lossless-sampling tests; `sharpness` sets how peaked,
 * `salt` tells the models apart.
 */
export function prefixDistribution(prefix: readonly number[], V: number, salt: number, sharpness: number): Float32Array {
  let h = 2166136261 ^ salt;
  for (const t of prefix) h = Math.imul(h ^ (t + 1), 16777619);
  const rng = createRng(h >>> 0);
  const p = Float32Array.from({ length: V }, () => Math.exp(sharpness * rng()));
  const total = p.reduce((a, b) => a + b);
  return p.map((x) => x / total);
}
