import { describe, expect, it } from "vitest";
import { bilinearUpsample, globalCom2 } from "./globalcom2.ts";

describe("bilinearUpsample", () => {
  it("is torch's bilinear interpolation with align_corners=False", () => {
    const up = bilinearUpsample(Float32Array.from([0, 1, 2, 3]), 2, 4);
    expect(Array.from(up)).toEqual([0, 0.25, 0.75, 1, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2, 2.25, 2.75, 3]);
  });
});

describe("globalCom2", () => {
  const side = 4;
  const N = side * side;
  // Thumbnail attention concentrated in the top-left quarter (crop 0's region).
  const thumb = Float32Array.from({ length: N }, (_, i) => (Math.floor(i / side) < 2 && i % side < 2 ? 0.2 : 0.01) + i * 1e-4);
  const crop = (seed: number) => ({ clsAttention: Float32Array.from({ length: N }, (_, i) => ((i * 7 + seed * 3) % N) / N) });
  const views = [{ clsAttention: thumb }, crop(1), crop(2), crop(3), crop(4)];

  it("keeps the thumbnail's most attended tokens and gives the attended crop the larger budget, as the formula says", () => {
    const ratio = 0.25;
    const kept = globalCom2(views, side, 2, ratio);
    const perView = [0, 1, 2, 3, 4].map((v) => kept.filter((k) => Math.floor(k / N) === v));
    // 1. int(0.25 * 16) = 4 thumbnail tokens: the top-left quarter.
    expect(perView[0]).toEqual([0, 1, 4, 5]);
    // 2. Budgets: s = region sums, soft = softmax((s - max) / 10), scale = min(1, r (1 + soft - mean)).
    const s = [0, 1, 2, 3].map((c) => [0, 1, 2, 3].map((j) => (Math.floor(c / 2) * 2 + Math.floor(j / 2)) * side + (c % 2) * 2 + (j % 2)).reduce((a, i) => a + thumb[i]!, 0));
    const e = s.map((x) => Math.exp((x - Math.max(...s)) / 10));
    const soft = e.map((x) => x / e.reduce((a, b) => a + b, 0));
    const expected = soft.map((x) => Math.max(1, Math.floor(N * Math.min(1, ratio * (1 + x - 0.25)))));
    expect(perView.slice(1).map((p) => p.length)).toEqual(expected);
    expect(expected[0]).toBeGreaterThanOrEqual(expected[3]!);
    expect(kept).toEqual([...kept].sort((a, b) => a - b));
  });

  it("keeps every token at keep = 100%", () => {
    expect(globalCom2(views, side, 2, 1)).toEqual(Array.from({ length: 5 * N }, (_, i) => i));
  });
});
