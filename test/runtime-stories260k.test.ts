// The one trained model among the fixtures: stories260K, imported from its llama2.c
// checkpoint, in every attention encoding. The runtime's greedy continuation of BOS must be
// the one the fixtures README documents from two independent plain forward passes.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { importLlama2c } from "../graph/importers/llama2c.ts";
import { ENCODINGS } from "../graph/zoo/index.ts";
import { DecoderModel } from "../runtime/decoder.ts";
import { Generator } from "../runtime/generate.ts";
import { HAVE_SHARED, NO_SHARED, SHARED_FIXTURES } from "./helpers/runtime-models.ts";
import { tempDir } from "./helpers/tmp.ts";

const CHECKPOINT = join(SHARED_FIXTURES, "stories260K/stories260K.bin");
const BOS = 1;
const DOCUMENTED = [461, 461, 401, 401, 401, 461, 378, 455, 473, 456, 435, 299, 362, 409, 283, 264, 283, 452, 288, 13];

describe.skipIf(!HAVE_SHARED || !existsSync(CHECKPOINT))(`stories260K through the runtime ${HAVE_SHARED ? "" : NO_SHARED}`, () => {
  const dir = tempDir("pipec-stories-");
  for (const encoding of ENCODINGS) {
    it(`${encoding}: greedy from BOS matches the documented continuation`, async () => {
      const out = join(dir, encoding);
      importLlama2c(CHECKPOINT, out, { encoding });
      const model = await DecoderModel.open(join(out, "model.onnx"), { device: "cpu", threads: 1 });
      try {
        const { tokens } = await new Generator(model).run([BOS], { maxTokens: DOCUMENTED.length, eosTokenIds: [] });
        expect(tokens).toEqual(DOCUMENTED);
      } finally {
        await model.release();
      }
    });
  }
});
