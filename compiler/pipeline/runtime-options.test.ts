import { describe, expect, it } from "vitest";
import { parseMethodOption } from "../methods/option.ts";
import { runtimeSpeculation } from "./runtime-options.ts";

const speculation = (text: string) => runtimeSpeculation(parseMethodOption(text, "speculate").use!);

describe("runtimeSpeculation", () => {
  it("leaves the draft length to the adaptive policy unless the .pipe fixes one", () => {
    const adaptive = { threshold: 0.3, min: 2, max: 20 };
    expect(speculation("lookup")).toEqual({ kind: "lookup", maxNgram: 3, draftLength: "adaptive", adaptive });
    expect(speculation("lookup(max_draft: adaptive(max: 6))")).toEqual({ kind: "lookup", maxNgram: 3, draftLength: "adaptive", adaptive: { ...adaptive, max: 6 } });
    expect(speculation("lookup(ngram: 2, max_draft: 8)")).toEqual({ kind: "lookup", maxNgram: 2, draftLength: 8 });
    expect(speculation("draft(model: small)")).toEqual({ kind: "draft", model: "small", draftLength: "adaptive", adaptive });
    expect(speculation("draft(model: small, k: 4)")).toEqual({ kind: "draft", model: "small", draftLength: 4 });
    expect(speculation("recycle")).toEqual({ kind: "recycle", topK: 8, tree: "auto" });
  });

  it("rejects a draft length that is neither a count nor adaptive, in one line", () => {
    expect(parseMethodOption("lookup(max_draft: 0)", "speculate").message).toContain("--speculate:1:19: error: lookup: max_draft must be a positive integer, got 0");
    expect(parseMethodOption("self(skip: [1], k: fast)", "speculate").message).toContain("k must be a positive integer or adaptive(threshold: 0.3, min: 2, max: 20), got 'fast'");
  });
});
