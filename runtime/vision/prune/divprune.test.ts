import { describe, expect, it } from "vitest";
import { cosineDistances } from "./cosine.ts";
import { divPrune } from "./divprune.ts";
import { keptCount } from "./budget.ts";

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
}

function randomTokens(n: number, dim: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n * dim }, r);
}

/** The reference code's loop, transcribed: every step re-reduces the distance rows of the picked set (no running minimum). */
function referenceDivPrune(x: Float32Array, n: number, dim: number, keep: number): number[] {
  const d = cosineDistances(x, n, dim);
  const s: number[] = [];
  for (let i = 0; i < keep; i++) {
    const scores = Array.from({ length: n }, (_, j) => {
      const column = Array.from({ length: n }, (_, r) => d[r * n + j]!);
      if (i === 0) return [...column].sort((a, b) => a - b)[1]!;
      return Math.min(...s.map((r) => column[r]!));
    });
    s.push(scores.indexOf(Math.max(...scores)));
  }
  return s.sort((a, b) => a - b);
}

/** The best min pairwise distance over every subset of `keep` of the n tokens. */
function bruteForceMaxMin(d: Float64Array, n: number, keep: number): number {
  let best = -Infinity;
  const pick = (from: number, chosen: number[]): void => {
    if (chosen.length === keep) {
      let min = Infinity;
      for (const a of chosen) for (const b of chosen) if (a < b) min = Math.min(min, d[a * n + b]!);
      best = Math.max(best, min);
      return;
    }
    for (let i = from; i < n; i++) pick(i + 1, [...chosen, i]);
  };
  pick(0, []);
  return best;
}

function minPairwise(d: Float64Array, n: number, set: number[]): number {
  let min = Infinity;
  for (const a of set) for (const b of set) if (a < b) min = Math.min(min, d[a * n + b]!);
  return min;
}

describe("divPrune", () => {
  it("picks what the reference code's loop picks, on random small inputs", () => {
    for (let seed = 1; seed <= 40; seed++) {
      const n = 4 + (seed % 9);
      const dim = 2 + (seed % 5);
      const x = randomTokens(n, dim, seed);
      for (let keep = 1; keep < n; keep++) expect(divPrune(x, n, dim, keep), `seed ${seed} keep ${keep}`).toEqual(referenceDivPrune(x, n, dim, keep));
    }
  });

  it("reaches the brute-force max-min optimum on clustered tokens (one pick per cluster)", () => {
    const r = rng(7);
    for (let trial = 0; trial < 20; trial++) {
      const clusters = 2 + (trial % 4);
      const dim = 6;
      const centres = Array.from({ length: clusters }, () => Array.from({ length: dim }, r));
      const n = clusters * 2 + (trial % 3);
      const x = new Float32Array(n * dim);
      for (let i = 0; i < n; i++) for (let c = 0; c < dim; c++) x[i * dim + c] = centres[i % clusters]![c]! + 1e-6 * r();
      const d = cosineDistances(x, n, dim);
      const kept = divPrune(x, n, dim, clusters);
      expect(new Set(kept.map((i) => i % clusters)).size).toBe(clusters);
      expect(minPairwise(d, n, kept)).toBeCloseTo(bruteForceMaxMin(d, n, clusters), 5);
    }
  });

  it("keeps every token, in order, when keep covers them all", () => {
    const x = randomTokens(9, 4, 3);
    expect(divPrune(x, 9, 4, 9)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect(divPrune(x, 9, 4, keptCount({ percent: 100 }, 9))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it("never keeps a token twice, even among duplicates", () => {
    const x = new Float32Array(8 * 2).fill(1);
    const kept = divPrune(x, 8, 2, 5);
    expect(new Set(kept).size).toBe(5);
  });
});

describe("keptCount", () => {
  it("takes a count or a percentage, as round(ratio * N), within 1..N", () => {
    expect(keptCount({ count: 10 }, 256)).toBe(10);
    expect(keptCount({ count: 1000 }, 256)).toBe(256);
    expect(keptCount({ percent: 25 }, 256)).toBe(64);
    expect(keptCount({ percent: 9.8 }, 576)).toBe(56);
    expect(keptCount({ percent: 0.1 }, 256)).toBe(1);
    expect(() => keptCount({ percent: 0 }, 256)).toThrow(/percentage/);
  });
});
