import { describe, expect, it } from "vitest";
import { parseMethodOption } from "../../compiler/methods/option.ts";

describe("parseMethodOption", () => {
  it("parses a method with its parameters and fills in the paper's defaults", () => {
    const { use, message } = parseMethodOption("streaming(sinks: 4, window: 60)", "kv");
    expect(message).toBe("");
    expect(use).toMatchObject({ slot: "kv", method: "streaming", params: { sinks: 4, window: 60 }, given: ["sinks", "window"], lossy: true });
    expect(parseMethodOption("lookup(ngram: 2)", "speculate").use?.params).toEqual({ ngram: 2, max_draft: { adaptive: { threshold: 0.3, min: 2, max: 20 } } });
    expect(parseMethodOption("tidal", "attention").use?.params).toEqual({ top_k: 256, full_layers: "auto", select_layers: "auto" });
    expect(parseMethodOption("lookup(max_draft: adaptive(max: 6))", "speculate").use?.params).toEqual({ ngram: 3, max_draft: { adaptive: { threshold: 0.3, min: 2, max: 6 } } });
    expect(parseMethodOption("lookup(max_draft: 8)", "speculate").use?.params).toEqual({ ngram: 3, max_draft: 8 });
    expect(parseMethodOption("draft(model: small, k: adaptive(max: 8))", "speculate").use?.params).toEqual({ model: "small", k: { adaptive: { threshold: 0.3, min: 2, max: 8 } } });
  });

  it("takes a trailing '?' as a .pipe setting does: the request is optional", () => {
    expect(parseMethodOption("streaming(sinks: 4)?", "kv").use).toMatchObject({ method: "streaming", params: { sinks: 4 }, optional: true });
    expect(parseMethodOption("streaming(sinks: 4)", "kv").use?.optional).toBeUndefined();
    expect(parseMethodOption("streaming(sinks: 4)??", "kv").message).toMatch(/^--kv:1:20: error: /);
  });

  it("reports mistakes with the option as the file and a caret", () => {
    expect(parseMethodOption("streaming(sinks: 4, windw: 60)", "kv").message).toBe(
      ["--kv:1:21: error: kv: streaming has no parameter 'windw' (did you mean 'window'?)", "  streaming(sinks: 4, windw: 60)", "                      ^~~~~"].join("\n"),
    );
    expect(parseMethodOption("lokup(ngram: 3)", "speculate").message).toContain("--speculate:1:1: error: unknown speculate method 'lokup' (did you mean 'lookup'?)");
    expect(parseMethodOption("tidal(top_k: 0%)", "attention").message).toContain("--attention:1:14: error: tidal: top_k must be a percentage above 0% and at most 100%, got 0%");
    expect(parseMethodOption("streaming(sinks: 4", "kv").message).toContain("--kv:1:19: error: expected ')' but found end of file");
    expect(parseMethodOption("greedy", "samplng").message).toBe("--samplng: error: unknown option slot 'samplng' (did you mean 'sampling'?)");
  });
});
