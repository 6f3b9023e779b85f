/** The model zoo: decoder LLMs in the Optimum I/O convention, in three attention encodings. */
export { buildZooModel, writeZooModel, type BuildOptions, type WriteOptions } from "./build.ts";
export {
  ENCODINGS,
  gpt2Config,
  headDim,
  kvHeads,
  llamaConfig,
  parameterCount,
  validateConfig,
  type AttentionEncoding,
  type Gpt2Config,
  type LlamaConfig,
  type RotaryLayout,
  type ZooConfig,
} from "./config.ts";
export { modelFacts, type ModelFacts } from "./facts.ts";
export { GeneratedWeights, inlineSink, type TensorSink, type WeightInit, type WeightSource } from "./weights.ts";
export { buildVisionEncoder, visionConfig, visualTokens, type VisionConfig } from "./vision.ts";
export { buildEmbedTokens, writeZooVlm, type VlmConfig } from "./vlm.ts";
