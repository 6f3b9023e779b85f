// The llama2.c importer against an independent plain-TypeScript forward pass of the checkpoint:
// in every encoding, onnxruntime with the KV cache fed back must produce the same greedy
// continuation of BOS for 64 tokens, with logits within 1e-4 at every step.

import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { PipecError } from "../graph/errors.ts";
import { importLlama2c } from "../graph/importers/llama2c.ts";
import { ENCODINGS } from "../graph/zoo/index.ts";
import { Llama2cForward } from "./helpers/llama2c-forward.ts";
import { argmax, CachedDecoder, maxAbsDiff } from "./helpers/zoo-decode.ts";

const FIXTURES = join(import.meta.dirname, "..", "..", "shared", "fixtures");
const STORIES = join(FIXTURES, "stories260K", "stories260K.bin");
const BOS = 1;
const TOKENS = 64;

const work = mkdtempSync(join(tmpdir(), "pipec-llama2c-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The reference's greedy tokens from BOS and the logits it saw at each step. */
function referenceRun(): { tokens: number[]; logits: Float32Array[] } {
  const model = new Llama2cForward(STORIES);
  const tokens: number[] = [];
  const logits: Float32Array[] = [];
  let token = BOS;
  for (let pos = 0; pos < TOKENS; pos++) {
    const row = model.forward(token, pos);
    logits.push(row);
    token = argmax(row);
    tokens.push(token);
  }
  return { tokens, logits };
}

describe.skipIf(!existsSync(STORIES))(`llama2c import of stories260K (needs ${STORIES})`, () => {
  const reference = existsSync(STORIES) ? referenceRun() : { tokens: [], logits: [] };

  it("the reference forward pass reproduces the continuation documented with the fixture", () => {
    expect(reference.tokens.slice(0, 20)).toEqual([461, 461, 401, 401, 401, 461, 378, 455, 473, 456, 435, 299, 362, 409, 283, 264, 283, 452, 288, 13]);
  });

  for (const encoding of ENCODINGS) {
    it(`${encoding}: same greedy tokens and logits as the reference`, async () => {
      const dir = join(work, encoding);
      const { modelPath, config } = importLlama2c(STORIES, dir, { encoding });
      expect(config).toMatchObject({ hidden: 64, intermediate: 172, layers: 5, heads: 8, kvHeads: 4, vocabSize: 512, rotary: "interleaved", tiedEmbeddings: true });
      const facts = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
      expect(facts).toMatchObject({ layers: 5, heads: 8, kvHeads: 4, headDim: 8, hidden: 64, vocabSize: 512, maxPositions: 512, ropeTheta: 10000, bosTokenId: 1, eosTokenId: 2 });

      const decoder = await CachedDecoder.open(modelPath);
      try {
        const tokens: number[] = [];
        let worst = 0;
        let token = BOS;
        for (let step = 0; step < TOKENS; step++) {
          const { logits } = await decoder.step([token]);
          worst = Math.max(worst, maxAbsDiff(logits, reference.logits[step]));
          token = argmax(logits);
          tokens.push(token);
        }
        expect(tokens).toEqual(reference.tokens);
        expect(worst).toBeLessThan(1e-4);
      } finally {
        await decoder.release();
      }
    });
  }

  it("a prefill of the whole continuation matches step-by-step decoding", async () => {
    const { modelPath } = importLlama2c(STORIES, join(work, "prefill"), { encoding: "decomposed" });
    const decoder = await CachedDecoder.open(modelPath);
    try {
      const prompt = [BOS, ...reference.tokens.slice(0, 15)];
      const { logits, vocab } = await decoder.step(prompt);
      prompt.forEach((_, pos) => expect(maxAbsDiff(logits.subarray(pos * vocab, (pos + 1) * vocab), reference.logits[pos]), `position ${pos}`).toBeLessThan(1e-4));
    } finally {
      await decoder.release();
    }
  });
});

describe("llama2c import: bad input", () => {
  it("a truncated checkpoint is one clear PipecError line", () => {
    const file = join(work, "truncated.bin");
    const header = new Int32Array([64, 172, 5, 8, 4, 512, 512]);
    writeFileSync(file, new Uint8Array(header.buffer));
    const attempt = () => importLlama2c(file, join(work, "truncated"));
    expect(attempt).toThrow(PipecError);
    expect(attempt).toThrow(/truncated\.bin: not a llama2\.c v0 checkpoint: the header \(dim=64, .*\) implies 1056540 bytes, the file has 28$/);
  });

  it("a missing file says so", () => {
    expect(() => importLlama2c(join(work, "absent.bin"), join(work, "absent"))).toThrow(/absent\.bin: no such file/);
  });
});
