import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Builder } from "../ir/builder.ts";
import { DataType } from "../ir/dtype.ts";
import { Model } from "../ir/model.ts";
import { saveModel } from "../onnx/save.ts";
import type { LlamaConfig } from "./config.ts";
import { modelFacts } from "./facts.ts";
import { buildLlama, EMBED_TOKENS_INIT, EMBED_TOKENS_WEIGHT } from "./llama.ts";
import { buildVisionEncoder, visualTokens, type VisionConfig } from "./vision.ts";
import { GeneratedWeights, type WeightSource } from "./weights.ts";

export interface VlmConfig {
  vision: VisionConfig;
  decoder: LlamaConfig;
  /** The prompt token the image's visual tokens replace. */
  imageTokenId: number;
}

/** input_ids [B, S] -> inputs_embeds [B, S, hidden]: the decoder's token embedding as its own model. */
export function buildEmbedTokens(c: LlamaConfig, weights: WeightSource): Model {
  const model = new Model({ opsets: { "": 18 } });
  const b = new Builder(model.graph);
  const embedding = model.graph.addInitializer(weights.weight(EMBED_TOKENS_WEIGHT, [c.vocabSize, c.hidden], EMBED_TOKENS_INIT(c)), EMBED_TOKENS_WEIGHT);
  const ids = b.input("input_ids", DataType.INT64, ["batch_size", "sequence_length"]);
  b.output(b.typed(b.op.Gather(embedding, ids), DataType.FLOAT, ["batch_size", "sequence_length", c.hidden]), "inputs_embeds");
  return model;
}

/**
 * Writes a LLaVA-style vision-language model in the split layout of transformers.js / Optimum
 * exports: vision_encoder.onnx (ViT + projector), embed_tokens.onnx, decoder_model.onnx (a Llama
 * fed inputs_embeds), config.json (the decoder's facts and image_token_index) and
 * preprocessor_config.json. Seeded random weights, the same for the embedding in both models.
 */
export function writeZooVlm(c: VlmConfig, dir: string): { decoder: string; visionEncoder: string } {
  if (c.vision.projection !== c.decoder.hidden) throw new Error(`the projector gives ${c.vision.projection}-wide tokens but the decoder is ${c.decoder.hidden} wide`);
  mkdirSync(dir, { recursive: true });
  const weights = new GeneratedWeights(c.decoder.seed);
  const files = { visionEncoder: join(dir, "vision_encoder.onnx"), decoder: join(dir, "decoder_model.onnx") };
  saveModel(buildVisionEncoder(c.vision, weights), files.visionEncoder, { weights: "inline" });
  saveModel(buildEmbedTokens(c.decoder, weights), join(dir, "embed_tokens.onnx"), { weights: "inline" });
  saveModel(buildLlama(c.decoder, "decomposed", weights, true), files.decoder, { weights: "inline" });
  const config = { ...modelFacts(c.decoder, "decomposed"), image_token_index: c.imageTokenId, image_seq_length: visualTokens(c.vision), vision_config: c.vision };
  writeFileSync(join(dir, "config.json"), `${JSON.stringify(config, null, 2)}\n`);
  const preprocessor = { do_resize: true, size: { height: c.vision.imageSize, width: c.vision.imageSize }, do_rescale: true, rescale_factor: 1 / 255, do_normalize: true, image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5] };
  writeFileSync(join(dir, "preprocessor_config.json"), `${JSON.stringify(preprocessor, null, 2)}\n`);
  return files;
}
