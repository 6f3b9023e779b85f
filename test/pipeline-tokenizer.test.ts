import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { analyzeFile } from "../compiler/pipeline/frontend.ts";
import { DecoderModel, Generator, loadTokenizer } from "../runtime/index.ts";
import { HAVE_SHARED, SHARED_FIXTURES, SKIP_SHARED_REASON } from "./helpers/fixtures.ts";
import { tempDir } from "./helpers/tmp.ts";

// A genai GPT-2 export (stacked past_N KV, facts in genai_config.json) with a tokenizer.json.
const GPT2 = join(SHARED_FIXTURES, "genai-tiny-random-gpt2-fp32");
const AVAILABLE = HAVE_SHARED && existsSync(join(GPT2, "past.onnx"));

describe.skipIf(!AVAILABLE)(`a .pipe on a genai export with an hf tokenizer ${AVAILABLE ? "" : SKIP_SHARED_REASON}`, () => {
  const dir = tempDir("pipec-tokenizer-");
  const pipe = join(dir, "text.pipe");
  writeFileSync(
    pipe,
    `pipeline text {
  model gpt2 = onnx(${JSON.stringify(join(GPT2, "past.onnx"))})
  tokenizer tok = hf(${JSON.stringify(join(GPT2, "tokenizer.json"))})
  stage decode = generate(gpt2, tok) {
    max_tokens: 12
  }
}
`,
  );

  it("reads the model's facts from the graph and genai_config.json", () => {
    const result = analyzeFile(pipe);
    expect(result.checked!.models[0]!.facts).toEqual({
      layers: 5,
      kvHeads: 4,
      headDim: 8,
      vocabSize: 1000,
      maxPositions: 512,
      kvInputs: ["past_0", "past_1", "past_2", "past_3", "past_4"],
      kvOutputs: ["present_0", "present_1", "present_2", "present_3", "present_4"],
    });
  });

  it("refuses a tokenizer whose ids run past the model's vocabulary, before anything runs", () => {
    // This fixture's tokenizer.json is GPT-2's full 50,295-id tokenizer; the random model has 1000 logits.
    const result = analyzeFile(pipe);
    expect(result.diagnostics.items.map((d) => `${d.span?.line}:${d.span?.column}: ${d.message}`)).toEqual([
      "4:33: tokenizer 'tok' has 50295 token ids but model 'gpt2' has a vocabulary of 1000: use the model's own tokenizer",
    ]);
    expect(result.ir).toBeUndefined();
  });

  it("reports the same numbers as the runtime does when it is run anyway", async () => {
    const model = await DecoderModel.open(join(GPT2, "past.onnx"), { device: "cpu" });
    try {
      expect(() => new Generator(model, loadTokenizer(join(GPT2, "tokenizer.json")))).toThrow("the tokenizer has 50295 token ids but the model's logits cover 1000");
    } finally {
      await model.release();
    }
  });
});
