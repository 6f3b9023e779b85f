import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Model } from "../ir/model.ts";
import { saveModel } from "../onnx/save.ts";
import { parameterCount, type AttentionEncoding, type ZooConfig } from "./config.ts";
import { ExternalDataWriter } from "./external-writer.ts";
import { modelFacts } from "./facts.ts";
import { buildGpt2 } from "./gpt2.ts";
import { buildLlama } from "./llama.ts";
import { GeneratedWeights, type TensorSink, type WeightSource } from "./weights.ts";

export interface BuildOptions {
  encoding?: AttentionEncoding;
  /** Default: seeded random weights from `config.seed`. */
  weights?: WeightSource;
}

/** Builds the decoder `config` describes, in memory. */
export function buildZooModel(config: ZooConfig, opts: BuildOptions = {}): Model {
  const encoding = opts.encoding ?? "decomposed";
  const weights = opts.weights ?? new GeneratedWeights(config.seed);
  return config.family === "llama" ? buildLlama(config, encoding, weights) : buildGpt2(config, encoding, weights);
}

export interface WriteOptions {
  encoding?: AttentionEncoding;
  /** Put weights in `model.onnx.data`. Default: when they pass 256 MiB. */
  externalData?: boolean;
  /** Where weights come from, given where they must go. Default: seeded random weights. */
  weights?: (sink: TensorSink | undefined) => WeightSource;
}

const EXTERNAL_ABOVE_BYTES = 256 << 20;

/**
 * Writes `<dir>/model.onnx` and `<dir>/config.json`. With external data each weight
 * goes straight to `model.onnx.data` and is dropped from memory; the saved model references
 * that file where it lies, so peak memory is about one weight, not the model.
 */
export function writeZooModel(config: ZooConfig, dir: string, opts: WriteOptions = {}): { modelPath: string; parameters: number } {
  mkdirSync(dir, { recursive: true });
  const encoding = opts.encoding ?? "decomposed";
  const parameters = parameterCount(config);
  const external = opts.externalData ?? parameters * 4 > EXTERNAL_ABOVE_BYTES;
  const modelPath = join(dir, "model.onnx");
  const writer = external ? new ExternalDataWriter(`${modelPath}.data`) : undefined;
  try {
    const weights = opts.weights ? opts.weights(writer?.sink) : new GeneratedWeights(config.seed, writer?.sink);
    const model = buildZooModel(config, { encoding, weights });
    writer?.adoptInline(model);
    writer?.close();
    saveModel(model, modelPath, { weights: external ? "preserve" : "inline" });
  } catch (e) {
    writer?.close();
    throw e;
  }
  writeFileSync(join(dir, "config.json"), `${JSON.stringify(modelFacts(config, encoding), null, 2)}\n`);
  return { modelPath, parameters };
}
