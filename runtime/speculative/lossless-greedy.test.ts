// Greedy speculative decoding gives the non-speculative tokens, token for token, for every
// draft source: on the reference exports, the zoo's models in every attention encoding, and
// the shared genai fixtures (GPT-2 fp32/fp16, Qwen's GroupQueryAttention, LFM2's recurrent
// state: more of it in recurrent-rollback.test.ts) and the trained stories260K. Prompts include
// input-grounded ones (the model's own continuation repeated), where prompt lookup's drafts
// are actually accepted.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { importLlama2c } from "../../graph/importers/llama2c.ts";
import { ENCODINGS, gpt2Config, llamaConfig, writeZooModel } from "../../graph/zoo/index.ts";
import { tempDir } from "../../test/helpers/tmp.ts";
import { DecoderModel } from "../decoder.ts";
import { HAVE_SHARED, NO_SHARED, REFERENCE_DIR, SHARED_DECODERS, SHARED_FIXTURES, referenceExports } from "../../test/helpers/runtime-models.ts";
import { expectLossless, NEW_TOKENS, total } from "../../test/helpers/lossless.ts";

const CHECKPOINT = join(SHARED_FIXTURES, "stories260K/stories260K.bin");

describe("lossless greedy on the reference exports", () => {
  const names = referenceExports();
  const models = new Map<string, DecoderModel>();
  let lookupAccepted = 0;
  beforeAll(async () => {
    for (const name of names) models.set(name, await DecoderModel.open(join(REFERENCE_DIR, name, "model.onnx"), { device: "cpu", threads: 1 }));
  });
  afterAll(async () => {
    for (const model of models.values()) await model.release();
  });

  it("has the six exports", () => expect(names).toHaveLength(6));
  names.forEach((name, i) => {
    it(`${name}: 6 prompts x 6 sources equal plain decoding`, async () => {
      const draft = models.get(names[(i + 1) % names.length])!; // another family, same 384-token vocabulary
      const stats = await expectLossless(models.get(name)!, draft, 6);
      lookupAccepted += total(stats.get("lookup k=4")!, "acceptedTokens");
      // The target drafting for itself is always right, so a call yields several tokens.
      const self = stats.get("self-draft k=5")!;
      expect(total(self, "acceptedTokens")).toBe(total(self, "draftedTokens"));
      expect(total(self, "targetCalls")).toBeLessThan(6 * NEW_TOKENS / 3);
    });
  });

  it("lookup's drafts were accepted, not only proposed (the grounded prompts repeat in some families)", () => {
    expect(lookupAccepted).toBeGreaterThan(0);
  });
});

describe("lossless greedy on zoo models", () => {
  const dir = tempDir("pipec-speculative-zoo-");
  for (const encoding of ENCODINGS) {
    it(`llama target, gpt2 draft (${encoding}): 3 prompts x 6 sources`, async () => {
      const target = await DecoderModel.open(writeZooModel(llamaConfig({ seed: 5 }), join(dir, `llama-${encoding}`), { encoding }).modelPath, { device: "cpu", threads: 1 });
      const draft = await DecoderModel.open(writeZooModel(gpt2Config({ seed: 6 }), join(dir, `gpt2-${encoding}`), { encoding }).modelPath, { device: "cpu", threads: 1 });
      try {
        await expectLossless(target, draft, 3);
        await expectLossless(draft, target, 3);
      } finally {
        await target.release();
        await draft.release();
      }
    });
  }
});

describe.skipIf(!HAVE_SHARED)(`lossless greedy on the shared genai fixtures${HAVE_SHARED ? "" : ` (${NO_SHARED})`}`, () => {
  it("GPT-2 fp32 target with its fp16 twin as draft (stacked past_i layout), and back", async () => {
    const fp32 = await DecoderModel.open(SHARED_DECODERS.gpt2Fp32, { device: "cpu", threads: 1 });
    const fp16 = await DecoderModel.open(SHARED_DECODERS.gpt2Fp16, { device: "cpu", threads: 1 });
    try {
      await expectLossless(fp32, fp16, 3);
      await expectLossless(fp16, fp32, 3);
    } finally {
      await fp32.release();
      await fp16.release();
    }
  });

  it("Qwen GroupQueryAttention fixture (fp16 KV and logits, int32 ids, no position_ids) with the LFM2 fixture (recurrent state) as draft, and back", async () => {
    const qwen = await DecoderModel.open(SHARED_DECODERS.qwen35, { device: "cpu", threads: 1 });
    const lfm2 = await DecoderModel.open(SHARED_DECODERS.lfm2, { device: "cpu", threads: 1 });
    try {
      const stats = await expectLossless(qwen, lfm2, 6);
      expect(total(stats.get("lookup k=4")!, "acceptedTokens")).toBeGreaterThan(0);
      const self = stats.get("self-draft k=5")!;
      expect(total(self, "acceptedTokens")).toBe(total(self, "draftedTokens"));
      expect(total(self, "acceptedTokens")).toBeGreaterThan(0);
      await expectLossless(lfm2, qwen, 3);
    } finally {
      await qwen.release();
      await lfm2.release();
    }
  });
});

describe.skipIf(!HAVE_SHARED || !existsSync(CHECKPOINT))(`lossless greedy on the trained stories260K${HAVE_SHARED ? "" : ` (${NO_SHARED})`}`, () => {
  it("8 prompts x 6 sources, a random 512-token zoo llama as draft; lookup's and the self-draft's drafts accepted", async () => {
    const dir = tempDir("pipec-speculative-stories-");
    importLlama2c(CHECKPOINT, dir, { encoding: "decomposed" });
    const target = await DecoderModel.open(join(dir, "model.onnx"), { device: "cpu", threads: 1 });
    const draft = await DecoderModel.open(writeZooModel(llamaConfig({ seed: 5, vocabSize: 512 }), join(dir, "draft")).modelPath, { device: "cpu", threads: 1 });
    try {
      const stats = await expectLossless(target, draft, 8);
      expect(total(stats.get("lookup k=4")!, "acceptedTokens")).toBeGreaterThan(0);
      const self = stats.get("self-draft k=5")!;
      expect(total(self, "acceptedTokens")).toBe(total(self, "draftedTokens"));
      expect(total(self, "targetCalls")).toBeLessThan(8 * NEW_TOKENS / 3);
    } finally {
      await target.release();
      await draft.release();
    }
  });
});
