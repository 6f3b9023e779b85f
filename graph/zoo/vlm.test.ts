import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { VisionLanguageModel } from "../../runtime/vision/vlm.ts";
import { analyzeSource } from "../../compiler/pipeline/frontend.ts";
import { modelToBytes } from "../../test/helpers/zoo-decode.ts";
import { tempDir } from "../../test/helpers/tmp.ts";
import { llamaConfig } from "./config.ts";
import { buildLlama } from "./llama.ts";
import { visionConfig } from "./vision.ts";
import { writeZooVlm } from "./vlm.ts";
import { GeneratedWeights } from "./weights.ts";

const dir = tempDir("pipec-zoo-vlm-");
const decoder = llamaConfig({ hidden: 64, heads: 4, kvHeads: 2, intermediate: 128, layers: 2, vocabSize: 64, seed: 3, maxPositions: 2048 });
const config = { vision: visionConfig({ projection: 64 }), decoder, imageTokenId: 4 };
const files = writeZooVlm(config, dir);
const ids = (v: number[]) => new ort.Tensor("int64", BigInt64Array.from(v, BigInt), [1, v.length]);

describe("writeZooVlm", () => {
  it("writes a vision encoder giving [1, Nv, C] tokens and a [CLS] attention row over the patches", async () => {
    const session = await ort.InferenceSession.create(files.visionEncoder);
    const pixels = Float32Array.from({ length: 3 * 64 * 64 }, (_, i) => Math.sin(i));
    const out = await session.run({ pixel_values: new ort.Tensor("float32", pixels, [1, 3, 64, 64]) });
    await session.release();
    expect(out.image_features!.dims).toEqual([1, 256, 64]);
    expect(out.cls_attention!.dims).toEqual([1, 256]);
    const cls = out.cls_attention!.data as Float32Array;
    expect(Math.min(...cls)).toBeGreaterThanOrEqual(0);
    // A softmax row over [CLS] and the patches: the patches' share is below 1.
    expect(cls.reduce((a, x) => a + x, 0)).toBeLessThan(1);
  });

  it("splits the decoder faithfully: embed_tokens then decoder_model give the logits of the input_ids decoder", async () => {
    const prompt = [1, 9, 33, 7, 60];
    const embed = await ort.InferenceSession.create(join(dir, "embed_tokens.onnx"));
    const split = await ort.InferenceSession.create(files.decoder);
    const whole = await ort.InferenceSession.create(modelToBytes(buildLlama(decoder, "decomposed", new GeneratedWeights(decoder.seed))));
    const common: Record<string, ort.Tensor> = { attention_mask: ids(prompt.map(() => 1)), position_ids: ids(prompt.map((_, i) => i)) };
    for (let i = 0; i < decoder.layers; i++) for (const kv of ["key", "value"]) common[`past_key_values.${i}.${kv}`] = new ort.Tensor("float32", new Float32Array(0), [1, 2, 0, 16]);
    const embeds = (await embed.run({ input_ids: ids(prompt) })).inputs_embeds!;
    const a = (await split.run({ ...common, inputs_embeds: embeds })).logits!.data as Float32Array;
    const b = (await whole.run({ ...common, input_ids: ids(prompt) })).logits!.data as Float32Array;
    await Promise.all([embed.release(), split.release(), whole.release()]);
    expect(a).toEqual(b);
  });

  it("runs as a .pipe: an encode stage with DivPrune feeding the decoder", async () => {
    const source = `pipeline zoo_vlm {
  model vision = onnx("vision_encoder.onnx")
  model llm = onnx("decoder_model.onnx")
  tokenizer tok = ids
  stage see = encode(vision) { prune: divprune(keep: 25%) }
  stage answer = generate(llm, tok, input: see)
}`;
    const front = analyzeSource(source, join(dir, "zoo.pipe"));
    expect(front.diagnostics.items).toEqual([]);
    expect(front.ir!.encoders![0]!.prune.use.method).toBe("divprune");
    expect(front.ir!.models.find((m) => m.name === "vision")!.passes.map((p) => p.pass)).toEqual(["visual-token-distances"]);
    const vlm = await VisionLanguageModel.open(files, { device: "cpu" });
    try {
      const image = { width: 64, height: 64, rgb: Uint8Array.from({ length: 64 * 64 * 3 }, (_, i) => (i * 31) % 256) };
      const result = await vlm.run(image, [1, 5, 6], { maxTokens: 3, eosTokenIds: [], prune: { method: "divprune", keep: { percent: 25 } } });
      expect(result.tokens.length).toBe(3);
      expect(result.stats.keptTokens).toBe(64);
      expect(result.stats.promptTokens).toBe(3 - 1 + 1 + 64); // the image token inserted after BOS, replaced by 64 rows

      // GlobalCom2 on a thumbnail and 2 x 2 crops: 5 x 256 visual tokens, a quarter kept by per-crop budgets.
      const multi = await vlm.run(image, [1, 5, 6], { maxTokens: 2, eosTokenIds: [], prune: { method: "globalcom2", keep: { percent: 25 }, grid: 2 } });
      expect(multi.stats.visualTokens).toBe(5 * 256);
      expect(multi.stats.keptTokens).toBeGreaterThan(5 * 50);
      expect(multi.stats.keptTokens).toBeLessThan(5 * 80);
      const all = await vlm.run(image, [1, 5, 6], { maxTokens: 2, eosTokenIds: [], prune: { method: "globalcom2", keep: { percent: 100 }, grid: 2 } });
      expect(all.stats.keptTokens).toBe(5 * 256);
    } finally {
      await vlm.release();
    }
  });
});
