import { existsSync } from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DecoderModel } from "../decoder.ts";
import { VisionEncoder } from "./encoder.ts";
import { loadImage } from "./image.ts";
import { gatherTokens, selectVisualTokens } from "./prune/index.ts";
import { imagePromptRows, textRows } from "./splice.ts";
import { VisionLanguageModel } from "./vlm.ts";

const DIR = join(import.meta.dirname, "../../examples/models/shapes-vlm");
const FILES = { visionEncoder: join(DIR, "vision_encoder.onnx"), decoder: join(DIR, "decoder_model.onnx"), tokenizer: join(DIR, "tokenizer.json") };
const IMAGE = join(DIR, "heldout/000.png");
const QUESTION = "what color is the shape ?";

describe.skipIf(!existsSync(FILES.decoder))("VisionLanguageModel on examples/models/shapes-vlm", () => {
  let vlm: VisionLanguageModel;
  beforeAll(async () => {
    vlm = await VisionLanguageModel.open(FILES, { device: "cpu" });
  });
  afterAll(async () => {
    await vlm?.release();
  });

  it("keep = 100% is exact: every token kept, the same answer tokens as unpruned", async () => {
    const options = { maxTokens: 4, eosTokenIds: [] };
    const plain = await vlm.run(IMAGE, QUESTION, { ...options, prune: { method: "none" } });
    for (const method of ["divprune", "todre"] as const) {
      const full = await vlm.run(IMAGE, QUESTION, { ...options, prune: { method, keep: { percent: 100 } } });
      expect(full.stats.keptTokens).toBe(plain.stats.visualTokens);
      if (method === "divprune") expect(full.tokens).toEqual(plain.tokens);
      else expect(full.tokens[0]).toBe(plain.tokens[0]); // ToDRE drops the visual rows after the prompt: the first token is the prompt's
    }
  });

  it("feeds the decoder what onnxruntime computes from the split files by hand: kept rows at their original positions", async () => {
    const encoder = await VisionEncoder.open(FILES.visionEncoder, { device: "cpu" });
    const decoder = await DecoderModel.open(FILES.decoder, { device: "cpu" });
    const raw = await ort.InferenceSession.create(FILES.decoder);
    const embed = await ort.InferenceSession.create(join(DIR, "embed_tokens.onnx"));
    try {
      const tokens = await encoder.encode(loadImage(IMAGE));
      const kept = selectVisualTokens(tokens, { method: "divprune", keep: { percent: 25 } });
      expect(kept.length).toBe(Math.round(tokens.tokens / 4));
      const ids = [1, vlm.imageTokenId, ...vlm.generator.tokenizer!.encode(QUESTION).slice(1)];
      const image = { features: gatherTokens(tokens, kept), kept, tokens: tokens.tokens, tokenId: vlm.imageTokenId };
      const rows = await imagePromptRows(ids, image, decoder.embedder!);
      const logits = await decoder.newSequence().forwardEmbeds(rows.embeds, rows.positions);

      // By hand: embed the text, put the kept visual rows in the image token's place, positions as unpruned.
      const C = tokens.dim;
      const text = (await embed.run({ input_ids: new ort.Tensor("int64", BigInt64Array.from(ids, BigInt), [1, ids.length]) })).inputs_embeds!.data as Float32Array;
      const x = new Float32Array((ids.length - 1 + kept.length) * C);
      x.set(text.subarray(0, C), 0);
      kept.forEach((k, i) => x.set(tokens.features.subarray(k * C, (k + 1) * C), (1 + i) * C));
      x.set(text.subarray(2 * C), (1 + kept.length) * C);
      const positions = [0, ...kept.map((k) => 1 + k), ...ids.slice(2).map((_, j) => 1 + tokens.tokens + j)];
      const S = positions.length;
      const feeds: Record<string, ort.Tensor> = {
        inputs_embeds: new ort.Tensor("float32", x, [1, S, C]),
        attention_mask: new ort.Tensor("int64", new BigInt64Array(S).fill(1n), [1, S]),
        position_ids: new ort.Tensor("int64", BigInt64Array.from(positions, BigInt), [1, S]),
      };
      for (const slot of decoder.contract.kv) feeds[slot.input] = new ort.Tensor("float32", new Float32Array(0), slot.dims);
      const expected = (await raw.run(feeds)).logits!;
      expect(rows.positions).toEqual(positions);
      expect(logits.dims).toEqual(expected.dims);
      expect(logits.data).toEqual(expected.data);
    } finally {
      await Promise.all([encoder.release(), decoder.release(), raw.release(), embed.release()]);
    }
  });

  it("ToDRE leaves only the text rows in the cache once the prompt is in, and keeps generating", async () => {
    const result = await vlm.run(IMAGE, QUESTION, { maxTokens: 3, eosTokenIds: [], prune: { method: "todre", keep: { count: 32 } } });
    expect(result.stats.keptTokens).toBe(32);
    expect(result.tokens.length).toBe(3);
    const promptIds = vlm.generator.tokenizer!.encode(QUESTION).length + 1; // BOS, the image token, the question
    expect(result.stats.promptTokens).toBe(promptIds - 1 + 32);
    // The rows that stay: BOS and the question around the 32 visual rows.
    const image = { features: new Float32Array(0), kept: Array.from({ length: 32 }, (_, i) => i * 8), tokens: 256, tokenId: vlm.imageTokenId };
    expect(textRows([1, vlm.imageTokenId, 7, 8], image)).toEqual([0, 33, 34]);
  });

  it("an image is required by the prompt's image token, and a second one is refused", async () => {
    await expect(vlm.run(IMAGE, [1, vlm.imageTokenId, vlm.imageTokenId, 5], { maxTokens: 1 })).rejects.toThrow(/more than one image token/);
  });
});
