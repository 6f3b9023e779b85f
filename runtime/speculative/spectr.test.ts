// SpecTr's K-SEQ keeps the target's distribution exactly: chi-square over 30,000 draws of the
// first three tokens (two drafted positions and the bonus token) of a synthetic target/draft
// pair whose distributions depend on the prefix, with k = 1, 2 and 4 i.i.d. drafts; a control
// (each candidate tried with the single-draft rule min(1, p/q), then the residual max(0, p - q))
// must fail the same test, or the test could not tell.
import { describe, expect, it } from "vitest";
import { createRng, type Rng } from "../sampling/rng.ts";
import { prefixDistribution } from "../../test/helpers/prefix-distribution.ts";
import { goodnessOfFit } from "../../test/helpers/chi-square.ts";
import { buildTrie, kSeqBeta, kSeqRho, kSeqSelect, verifyTrie, type DraftTrie } from "./spectr.ts";
import { sampleProbabilities } from "./verify.ts";

const V = 8;
const SAMPLES = 30_000;
const LENGTH = 2;

const distribution = (prefix: readonly number[], salt: number, sharpness: number) => prefixDistribution(prefix, V, salt, sharpness);

const target = (prefix: readonly number[]) => distribution(prefix, 1, 3);
const draftModel = (prefix: readonly number[]) => distribution(prefix, 2, 3);

type TrieRule = (trie: DraftTrie, targetProbs: (node: number) => Float32Array, rng: Rng) => { path: number[]; next: number };

/** k i.i.d. drafts of LENGTH tokens after `prefix`. */
function drafts(prefix: readonly number[], k: number, rng: Rng) {
  return Array.from({ length: k }, () => {
    const tokens: number[] = [];
    const probs: Float32Array[] = [];
    for (let d = 0; d < LENGTH; d++) {
      const q = draftModel([...prefix, ...tokens]);
      tokens.push(sampleProbabilities(q, rng));
      probs.push(q);
    }
    return { tokens, probs };
  });
}

/** Path of node ids to tokens, root excluded. */
function pathTokens(trie: DraftTrie, path: readonly number[]): number[] {
  return path.slice(1).map((n) => trie.tokens[n]!);
}

/** Decodes `count` tokens with k drafts per step verified by `rule`; also returns the draft tokens accepted per step. */
function decode(count: number, k: number, rule: TrieRule, rng: Rng): { tokens: number[]; acceptedPerStep: number[] } {
  const out: number[] = [];
  const acceptedPerStep: number[] = [];
  while (out.length < count) {
    const prefix = [...out];
    const trie = buildTrie(-1, drafts(prefix, k, rng));
    const targetProbs = (node: number) => {
      const path: number[] = [];
      for (let n = node; n > 0; n = trie.parents[n]!) path.unshift(trie.tokens[n]!);
      return target([...prefix, ...path]);
    };
    const { path, next } = rule(trie, targetProbs, rng);
    acceptedPerStep.push(path.length - 1);
    out.push(...pathTokens(trie, path), next);
  }
  return { tokens: out.slice(0, count), acceptedPerStep };
}

/** The exact law of the first three target tokens, as one category per triple. */
function tripleLaw(): Float64Array {
  const law = new Float64Array(V ** 3);
  const first = target([]);
  for (let a = 0; a < V; a++) {
    const second = target([a]);
    for (let b = 0; b < V; b++) {
      const third = target([a, b]);
      for (let c = 0; c < V; c++) law[(a * V + b) * V + c] = first[a]! * second[b]! * third[c]!;
    }
  }
  return law;
}

function tripleCounts(k: number, rule: TrieRule, seed: number): Map<number, number> {
  const rng = createRng(seed);
  const counts = new Map<number, number>();
  for (let s = 0; s < SAMPLES; s++) {
    const [a, b, c] = decode(3, k, rule, rng).tokens;
    const key = (a! * V + b!) * V + c!;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

/** The control: each candidate tried with the single-draft rule, then the single-draft residual. Biased for k > 1. */
const naiveRule: TrieRule = (trie, targetProbs, rng) => {
  const path = [0];
  for (let node = 0; ; ) {
    const p = targetProbs(node);
    const children = trie.next[node]!;
    if (children.length === 0) return { path, next: sampleProbabilities(p, rng) };
    const q = trie.q[node]!;
    let token = -1;
    for (const c of children) {
      const x = trie.tokens[c]!;
      if (rng() * q[x]! < p[x]!) {
        token = x;
        break;
      }
    }
    if (token < 0) token = sampleProbabilities(p.map((pv, v) => Math.max(0, pv - q[v]!)), rng);
    const match = children.find((c) => trie.tokens[c] === token);
    if (match === undefined) return { path, next: token };
    path.push((node = match));
  }
};

describe("K-SEQ", () => {
  it("ρ is 1 for one candidate or a draft equal to the target, at most k, and satisfies 1 - (1-β)^k <= ρβ", () => {
    const p = target([]), q = draftModel([]);
    expect(kSeqRho(p, q, 1)).toBe(1);
    expect(kSeqRho(p, p, 4)).toBe(1);
    for (const k of [2, 3, 4, 8]) {
      const rho = kSeqRho(p, q, k);
      const beta = kSeqBeta(p, q, rho);
      expect(rho).toBeGreaterThan(1);
      expect(rho).toBeLessThanOrEqual(k);
      expect(1 - (1 - beta) ** k).toBeLessThanOrEqual(rho * beta + 1e-9);
      // Smallest: a little less fails the bound.
      const less = kSeqBeta(p, q, rho - 1e-3);
      expect(1 - (1 - less) ** k).toBeGreaterThan((rho - 1e-3) * less);
    }
  });

  it("accepts a candidate more often with more of them: 1 - (1 - β(ρ))^k grows with k", () => {
    const p = target([7]), q = draftModel([7]);
    const rng = createRng(3);
    const rate = (k: number) => {
      let accepted = 0;
      for (let i = 0; i < 20_000; i++) {
        const candidates = Array.from({ length: k }, () => sampleProbabilities(q, rng));
        if (kSeqSelect(p, q, candidates, rng).accepted >= 0) accepted++;
      }
      return accepted / 20_000;
    };
    const [one, two, four] = [rate(1), rate(2), rate(4)];
    expect(one).toBeCloseTo(kSeqBeta(p, q, 1), 1);
    expect(two).toBeGreaterThan(one + 0.02);
    expect(four).toBeGreaterThan(two + 0.02);
  });

  it("buildTrie merges shared prefixes and keeps every draft's way through the trie", () => {
    const q = new Float32Array(V).fill(1 / V);
    const trie = buildTrie(9, [
      { tokens: [1, 2], probs: [q, q] },
      { tokens: [1, 3], probs: [q, q] },
      { tokens: [4, 2], probs: [q, q] },
    ]);
    expect(trie.tokens).toEqual([9, 1, 2, 3, 4, 2]);
    expect(trie.parents).toEqual([-1, 0, 1, 1, 0, 4]);
    expect(trie.next[0]).toEqual([1, 1, 4]);
    expect(trie.next[1]).toEqual([2, 3]);
  });
});

describe("SpecTr verification is lossless in distribution", () => {
  const law = tripleLaw();
  for (const k of [1, 2, 4]) {
    it(`k = ${k} i.i.d. drafts of ${LENGTH} tokens: the first three tokens follow the target`, () => {
      const pValue = goodnessOfFit(tripleCounts(k, verifyTrie, 100 + k), law);
      if (!(pValue > 1e-3)) console.error(`chi-square p-value ${pValue}`);
      expect(pValue).toBeGreaterThan(1e-3);
    });
  }

  it("the test has power: the single-draft rule applied to each of 4 candidates fails it", () => {
    expect(goodnessOfFit(tripleCounts(4, naiveRule, 200), law)).toBeLessThan(1e-6);
  });

  it("more drafts accept more tokens per target call", () => {
    const mean = (k: number) => {
      const rng = createRng(300 + k);
      let accepted = 0;
      for (let s = 0; s < 3000; s++) accepted += decode(1, k, verifyTrie, rng).acceptedPerStep[0]!;
      return accepted / 3000;
    };
    expect(mean(4)).toBeGreaterThan(mean(1) * 1.2);
  });
});
