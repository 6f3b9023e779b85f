// SpecTr (Sun et al., NeurIPS 2023): k drafts sampled i.i.d. from the draft
// model, merged into a trie and verified in one target call, each position decided by K-SEQ.
//
// K-SEQ at one position, with k' candidates X_1..X_k' drawn i.i.d. from q: accept X_i with
// probability min(1, p(X_i) / (ρ q(X_i))), the first accepted one wins; if none is, draw from the
// residual p(x) - min(q(x), p(x)/ρ) (1 - (1-β)^k') / β, where β = Σ_x min(q(x), p(x)/ρ). The
// chance that x comes out accepted is min(q(x), p(x)/ρ) (1 - (1-β)^k') / β, which stays within
// p(x) whenever 1 - (1-β)^k' <= ρβ, so the output follows p exactly; the smallest such ρ accepts
// most (ρβ(ρ) and (1-β(ρ))^k' both grow with ρ, so it is found by bisection; k' = 1 gives
// ρ = 1, the single-draft rule of §10). The decided token's drafts (those whose token equals it,
// accepted or drawn from the residual) go on to the next position: their continuations are
// still i.i.d. draws from q given it, since acceptance looked only at this position.
import type { Rng } from "../sampling/rng.ts";
import { sampleProbabilities } from "./verify.ts";

/** β(ρ) = Σ_x min(q(x), p(x) / ρ): the chance that one candidate is accepted. */
export function kSeqBeta(p: Float32Array, q: Float32Array, rho: number): number {
  let beta = 0;
  for (let v = 0; v < p.length; v++) beta += Math.min(q[v]!, p[v]! / rho);
  return beta;
}

/** The smallest ρ in [1, k] with 1 - (1-β(ρ))^k <= ρ β(ρ) (to within 1e-6 of ρ, rounded up so the bound holds). */
export function kSeqRho(p: Float32Array, q: Float32Array, k: number): number {
  const feasible = (rho: number) => {
    const beta = kSeqBeta(p, q, rho);
    return 1 - (1 - beta) ** k <= rho * beta + 1e-12;
  };
  if (k <= 1 || feasible(1)) return 1;
  let [low, high] = [1, k];
  while (high - low > 1e-6) {
    const mid = (low + high) / 2;
    if (feasible(mid)) high = mid;
    else low = mid;
  }
  return high;
}

/** One K-SEQ decision: the token at this position, and which candidate was accepted (-1: drawn from the residual). */
export function kSeqSelect(p: Float32Array, q: Float32Array, candidates: readonly number[], rng: Rng): { token: number; accepted: number } {
  const k = candidates.length;
  const rho = kSeqRho(p, q, k);
  for (let i = 0; i < k; i++) {
    const x = candidates[i]!;
    if (rng() * rho * q[x]! < p[x]!) return { token: x, accepted: i };
  }
  const beta = kSeqBeta(p, q, rho);
  const scale = beta > 0 ? (1 - (1 - beta) ** k) / beta : 0;
  const residual = new Float32Array(p.length);
  let total = 0;
  for (let v = 0; v < p.length; v++) total += residual[v] = Math.max(0, p[v]! - Math.min(q[v]!, p[v]! / rho) * scale);
  // Float rounding can leave no residual where every candidate had to be accepted: p itself is then the law.
  return { token: sampleProbabilities(total > 0 ? residual : p, rng), accepted: -1 };
}

/** k drafts merged into a trie: node 0 is the decided token, every other node one draft token, parents first. */
export interface DraftTrie {
  tokens: number[];
  parents: number[];
  /** Per node: the draft distribution its children were drawn from (undefined at leaves). */
  q: (Float32Array | undefined)[];
  /** Per node: the child node of each draft through it that goes on (draft order), one entry per draft. */
  next: number[][];
}

/** Merges drafts (token lists with the q each token was drawn from) under the decided token `root`. */
export function buildTrie(root: number, drafts: readonly { tokens: readonly number[]; probs: readonly Float32Array[] }[]): DraftTrie {
  const trie: DraftTrie = { tokens: [root], parents: [-1], q: [undefined], next: [[]] };
  const child = new Map<string, number>();
  for (const draft of drafts) {
    let node = 0;
    draft.tokens.forEach((token, d) => {
      trie.q[node] ??= draft.probs[d]!;
      const key = `${node}:${token}`;
      let c = child.get(key);
      if (c === undefined) {
        child.set(key, (c = trie.tokens.length));
        trie.tokens.push(token);
        trie.parents.push(node);
        trie.q.push(undefined);
        trie.next.push([]);
      }
      trie.next[node]!.push(c);
      node = c;
    });
  }
  return trie;
}

/**
 * Verifies a trie position by position with K-SEQ; `targetProbs(node)` is the target's warped
 * distribution after the node. Returns the accepted nodes (root first) and the token after them.
 */
export function verifyTrie(trie: DraftTrie, targetProbs: (node: number) => Float32Array, rng: Rng): { path: number[]; next: number } {
  const path = [0];
  for (let node = 0; ; ) {
    const p = targetProbs(node);
    const children = trie.next[node]!;
    if (children.length === 0) return { path, next: sampleProbabilities(p, rng) };
    const { token } = kSeqSelect(p, trie.q[node]!, children.map((c) => trie.tokens[c]!), rng);
    const match = children.find((c) => trie.tokens[c] === token);
    if (match === undefined) return { path, next: token };
    path.push((node = match));
  }
}
