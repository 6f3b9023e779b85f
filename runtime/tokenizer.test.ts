import { describe, expect, it } from "vitest";
import { isRuntimeError } from "./errors.ts";
import { TextStream } from "./text-stream.ts";
import { GPT2_TOKENIZER, HAVE_SHARED, NO_SHARED } from "../test/helpers/runtime-models.ts";
import { loadTokenizer } from "./tokenizer.ts";

describe("loadTokenizer", () => {
  it("names a missing file in one line", () => {
    let error: unknown;
    try {
      loadTokenizer("/nonexistent/tokenizer.json");
    } catch (e) {
      error = e;
    }
    expect(isRuntimeError(error) && error.code).toBe("tokenizer-not-found");
  });
});

describe.skipIf(!HAVE_SHARED)(`GPT-2 tokenizer.json ${HAVE_SHARED ? "" : NO_SHARED}`, () => {
  const tokenizer = HAVE_SHARED ? loadTokenizer(GPT2_TOKENIZER) : undefined!;

  it("encodes to GPT-2's ids and decodes back", () => {
    expect(tokenizer.encode("Hello world")).toEqual([15496, 995]);
    const text = "Streaming ünïcödé, 日本語 and emoji 🙂!";
    expect(tokenizer.decode(tokenizer.encode(text))).toBe(text);
  });

  it("knows its size and its EOS", () => {
    expect(tokenizer.vocabSize).toBe(50295);
    expect(tokenizer.eosTokenId).toBe(50256);
  });

  it("streams text that concatenates to the full decode, never splitting a character", () => {
    const text = "naïve 日本語 🙂 done";
    const ids = tokenizer.encode(text);
    const stream = new TextStream(tokenizer, []);
    const deltas = ids.map((id) => stream.push(id));
    deltas.push(stream.flush());
    expect(deltas.join("")).toBe(text);
    for (const d of deltas) expect(d).not.toContain("\uFFFD");
    expect(deltas.filter((d) => d === "").length).toBeGreaterThan(1); // multi-token characters waited
  });

  it("holds back a possible stop string and cuts at the first one", () => {
    const ids = tokenizer.encode("one two three four");
    const stream = new TextStream(tokenizer, [" thr", "zzz"]);
    const deltas = ids.map((id) => stream.push(id));
    expect(stream.stopped).toBe(true);
    expect(deltas.join("")).toBe("one two");
    expect(stream.text).toBe("one two");
  });
});
