// The runtime drives the project's zoo models (Optimum I/O, every attention encoding and
// family) exactly like the plain reference loop does.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ENCODINGS, gpt2Config, llamaConfig, writeZooModel } from "../graph/zoo/index.ts";
import { DecoderModel } from "../runtime/decoder.ts";
import { Generator } from "../runtime/generate.ts";
import { greedyReference } from "./helpers/reference-loop.ts";
import { tempDir } from "./helpers/tmp.ts";

const PROMPT = [1, 45, 12, 200, 7];
const NEW_TOKENS = 8;

describe("runtime on zoo models", () => {
  const dir = tempDir("pipec-runtime-zoo-");
  const configs = { llama: llamaConfig({ seed: 3 }), gpt2: gpt2Config({ seed: 3 }) };
  for (const [family, config] of Object.entries(configs)) {
    for (const encoding of ENCODINGS) {
      it(`${family} (${encoding}): greedy equals the reference loop`, async () => {
        const { modelPath } = writeZooModel(config, join(dir, `${family}-${encoding}`), { encoding });
        const expected = await greedyReference(modelPath, PROMPT, NEW_TOKENS);
        const model = await DecoderModel.open(modelPath, { device: "cpu", threads: 1 });
        try {
          const { tokens } = await new Generator(model).run(PROMPT, { maxTokens: NEW_TOKENS, eosTokenIds: [] });
          expect(tokens).toEqual(expected);
        } finally {
          await model.release();
        }
      });
    }
  }
});
