import { describe, expect, it } from "vitest";
import { lookup, PromptLookup } from "./prompt-lookup.ts";

describe("prompt lookup", () => {
  it("continues the leftmost earlier occurrence of the longest matching n-gram", () => {
    // Suffix [2, 3]: the 3-gram [9, 2, 3] never occurs earlier, the 2-gram does at 1 and 6; the leftmost wins.
    expect(lookup([1, 2, 3, 4, 5, 2, 2, 3, 7, 9, 2, 3], 3, 3)).toEqual([4, 5, 2]);
  });

  it("prefers a longer n-gram over an earlier shorter one", () => {
    // [3] occurs at 0 (-> 8), but [5, 3] occurs at 3 (-> 6).
    expect(lookup([3, 8, 1, 5, 3, 6, 0, 5, 3], 3, 2)).toEqual([6, 0]);
  });

  it("offers a continuation cut at the context's end, and nothing without a match", () => {
    expect(lookup([4, 1, 4], 3, 5)).toEqual([1, 4]);
    expect(lookup([1, 2, 3], 3, 5)).toEqual([]);
    expect(lookup([7], 3, 5)).toEqual([]);
    expect(lookup([4, 1, 4], 3, 0)).toEqual([]);
  });

  it("is a deterministic source (no q, no confidence)", async () => {
    const draft = await new PromptLookup(2).propose([5, 6, 7, 5, 6], 4);
    expect(draft).toEqual({ tokens: [7, 5, 6] });
  });
});
