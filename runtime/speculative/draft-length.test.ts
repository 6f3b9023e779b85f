import { describe, expect, it } from "vitest";
import { CostModel } from "./cost-model.ts";
import { AcceptanceEstimate, ADAPTIVE_DEFAULTS, bestLength, expectedTokens, shouldStop } from "./draft-length.ts";

describe("SpecDec++ stopping rule", () => {
  it("stops once P(at least one rejection) exceeds the threshold, within [min, max]", () => {
    expect(shouldStop(1, 0.1, ADAPTIVE_DEFAULTS)).toBe(false); // below min
    expect(shouldStop(2, 0.71, ADAPTIVE_DEFAULTS)).toBe(false); // P(reject) 0.29
    expect(shouldStop(2, 0.69, ADAPTIVE_DEFAULTS)).toBe(true); // P(reject) 0.31
    expect(shouldStop(20, 1, ADAPTIVE_DEFAULTS)).toBe(true); // max
  });
});

describe("cost guard", () => {
  it("expected tokens per call: 1 + sum of chain acceptance", () => {
    expect(expectedTokens([0.5, 0.5, 0.5], 3)).toBeCloseTo(1 + 0.5 + 0.25 + 0.125, 12);
    expect(expectedTokens([0.5], 0)).toBe(1);
  });

  it("a flat cost (GPU-like) takes the whole confident draft", () => {
    expect(bestLength([0.9, 0.9, 0.9, 0.9], new CostModel(10, 0), 0)).toBe(4);
  });

  it("a cost growing with tokens (CPU-like) cuts the draft where the marginal token stops paying", () => {
    // Call of k+1 tokens: 10 + 5(k+1) ms. alpha 0.6: k=1 -> 1.6/20 = 0.080, k=2 -> 1.96/25 = 0.078; plain 1/15 = 0.067.
    expect(bestLength([0.6, 0.6, 0.6], new CostModel(10, 5), 0)).toBe(1);
  });

  it("drafts nothing when plain decoding is faster, e.g. a draft as slow as the target", () => {
    expect(bestLength([0.2, 0.2], new CostModel(10, 5), 0)).toBe(0);
    expect(bestLength([0.9, 0.9], new CostModel(10, 0), 10)).toBe(0);
  });

  it("a draft that costs a target call per token never pays, even if every token were accepted", () => {
    for (const cost of [new CostModel(10, 0), new CostModel(10, 5), new CostModel(0.2, 0.01)]) {
      expect(bestLength([1, 1, 1, 1, 1], cost, cost.callMs(1))).toBe(0);
    }
  });

  it("fits the measured line", () => {
    const fit = CostModel.fit([1, 2, 4, 8].map((tokens) => ({ tokens, ms: 3 + 0.5 * tokens })));
    expect(fit.fixedMs).toBeCloseTo(3, 9);
    expect(fit.perTokenMs).toBeCloseTo(0.5, 9);
  });
});

describe("acceptance estimate", () => {
  it("counts accepted tokens over trials up to the first rejection, fading old runs", () => {
    const estimate = new AcceptanceEstimate(1);
    expect(estimate.alpha).toBe(0.5);
    estimate.record(4, 4); // 4 trials, all accepted
    estimate.record(4, 1); // 2 trials, 1 accepted
    expect(estimate.alpha).toBeCloseTo((1 + 4 + 1) / (2 + 4 + 2), 12);
    estimate.record(0, 0); // an empty draft says nothing
    expect(estimate.alpha).toBeCloseTo(6 / 8, 12);
  });
});
