// The runtime's greedy output must equal independent baselines token for token:
// a from-scratch recomputation (every shared fixture: all cache layouts), the plain
// reference loop (Optimum-layout exports) and PyTorch's own tokens (reference exports).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { greedyReference } from "../test/helpers/reference-loop.ts";
import { DecoderModel } from "./decoder.ts";
import { Generator } from "./generate.ts";
import { greedyFromScratch, HAVE_SHARED, NO_SHARED, REFERENCE_DIR, referenceExports, SHARED_DECODERS } from "../test/helpers/runtime-models.ts";

const PROMPT = [5, 17, 42, 9, 311];
const NEW_TOKENS = 10;

async function runtimeGreedy(modelPath: string, prompt: readonly number[], maxTokens: number, prefillChunkSize?: number): Promise<number[]> {
  const model = await DecoderModel.open(modelPath, { device: "cpu", threads: 1 });
  try {
    const { tokens } = await new Generator(model).run(prompt, { maxTokens, eosTokenIds: [], prefillChunkSize });
    return tokens;
  } finally {
    await model.release();
  }
}

describe.skipIf(!HAVE_SHARED)(`greedy parity on the shared fixtures ${HAVE_SHARED ? "" : NO_SHARED}`, () => {
  for (const [name, path] of Object.entries(SHARED_DECODERS)) {
    it(`${name}: equals full recomputation, whole and chunked prefill`, async () => {
      const expected = await greedyFromScratch(path, PROMPT, NEW_TOKENS);
      expect(await runtimeGreedy(path, PROMPT, NEW_TOKENS)).toEqual(expected);
      expect(await runtimeGreedy(path, PROMPT, NEW_TOKENS, 2)).toEqual(expected);
    });
  }
});

interface Expected {
  max_new_tokens: number;
  prompts: { input_ids: number[]; greedy: number[] }[];
}

const exports = referenceExports();
describe.skipIf(exports.length === 0)("greedy parity on the reference exports", () => {
  for (const name of exports) {
    it(`${name}: equals PyTorch's tokens and the plain reference loop`, async () => {
      const modelPath = join(REFERENCE_DIR, name, "model.onnx");
      const expected = JSON.parse(readFileSync(join(REFERENCE_DIR, name, "expected.json"), "utf8")) as Expected;
      for (const { input_ids, greedy } of expected.prompts) {
        expect(await runtimeGreedy(modelPath, input_ids, expected.max_new_tokens)).toEqual(greedy);
      }
      const prompt = expected.prompts[0].input_ids;
      expect(await runtimeGreedy(modelPath, prompt, NEW_TOKENS)).toEqual(await greedyReference(modelPath, prompt, NEW_TOKENS));
    });
  }
});
