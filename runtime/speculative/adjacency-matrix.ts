// Token Recycling's adjacency matrix: each token's likeliest successors as the target last
// saw them (Luo et al., ACL 2025), filled from every call's logits or in-graph top-k ids.

/** Successors stored per token (the paper's output_id_topk). */
export const RECYCLE_TOP_K = 8;

/** Adj [V, k]: each token's k likeliest successors as last seen by the target; zeros at first, as in the paper. */
export class AdjacencyMatrix {
  readonly successors: Int32Array;
  /**
   * [V, k] the target's probability of each successor when it was recorded, for trees grown by
   * probability (DySpec): 0 for a row never seen, NaN for one recorded from ids alone (no logits).
   * Made on first use: the static template never reads it.
   */
  private probabilities?: Float32Array;

  constructor(
    readonly vocabSize: number,
    readonly k = RECYCLE_TOP_K,
  ) {
    this.successors = new Int32Array(vocabSize * k);
  }

  get probs(): Float32Array {
    return (this.probabilities ??= new Float32Array(this.vocabSize * this.k));
  }

  /** The probabilities if a grown tree ever recorded any (warm-state.ts persists only what exists). */
  get recordedProbs(): Float32Array | undefined {
    return this.probabilities;
  }

  get(token: number, rank: number): number {
    return this.successors[token * this.k + rank]!;
  }

  /** Adj[token] = the top k of `row` (logits over the vocabulary), likeliest first. */
  update(token: number, row: Float32Array): void {
    topK(row, this.k, this.successors.subarray(token * this.k, (token + 1) * this.k));
  }
}

/** Writes the ids of the `out.length` largest entries of `row` into `out`, largest first (ties: lower id). */
export function topK(row: Float32Array, k: number, out: Int32Array): void {
  const values = new Float32Array(k).fill(-Infinity);
  out.fill(0);
  let filled = 0;
  for (let id = 0; id < row.length; id++) {
    const v = row[id]!;
    if (filled === k && !(v > values[k - 1]!)) continue;
    let j = Math.min(filled, k - 1);
    while (j > 0 && v > values[j - 1]!) {
      values[j] = values[j - 1]!;
      out[j] = out[j - 1]!;
      j--;
    }
    values[j] = v;
    out[j] = id;
    if (filled < k) filled++;
  }
}

/** The softmax probability of each of `ids` in the logits `row` (written into `out`). */
export function successorProbabilities(row: Float32Array, ids: Int32Array, out: Float32Array): void {
  const max = row[ids[0]!]!;
  let total = 0;
  for (let v = 0; v < row.length; v++) total += Math.exp(row[v]! - max);
  for (let r = 0; r < ids.length; r++) out[r] = Math.exp(row[ids[r]!]! - max) / total;
}
