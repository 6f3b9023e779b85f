/** pipec's runtime: run ONNX decoder LLMs on onnxruntime-node. Imports nothing from the compiler. */
export { openSession, missingRequirement, type Device, type GraphOptimizationLevel, type OpenedSession, type ResolvedDevice, type SessionOptions } from "./device.ts";
export { readContract, type DecoderContract, type KvMode, type KvSlot, type StateSlot } from "./contract.ts";
export { DecoderModel, DecoderSequence, readDeclaredConfig, type DecoderOptions, type DeclaredConfig } from "./decoder.ts";
export { createKvCache, type KvCache, type KvCacheOptions } from "./cache/kv-cache.ts";
export { evictStreaming, streamingKeep, type StreamingConfig } from "./cache/streaming.ts";
export { Generator, type EndEvent, type FinishReason, type GenerateOptions, type GenerationEvent, type GenerationResult, type TokenEvent } from "./generate.ts";
export type { GenerationStats } from "./metrics.ts";
export { Speculator, type DraftModelSpeculation, type LookupSpeculation, type SpeculateOptions } from "./speculative/speculator.ts";
export { SpecTrDecoding, type SpecTrSpeculation } from "./speculative/spectr-decoding.ts";
export type { SpeculativeStats } from "./speculative/stats.ts";
export { TokenRecycling, type RecycleOptions, type RecycleSpeculation } from "./speculative/token-recycling.ts";
export { composeProcessors, repetitionPenalty, temperature, topK, topP, type LogitsProcessor, type ProcessorContext } from "./sampling/processors.ts";
export { argmax, createSampler, parseSampling, sampleSoftmax, type Sampler, type SamplingConfig } from "./sampling/sampler.ts";
export { createRng, type Rng } from "./sampling/rng.ts";
export { loadTokenizer, type TextTokenizer } from "./tokenizer.ts";
export { TextStream } from "./text-stream.ts";
export { RuntimeError, isRuntimeError } from "./errors.ts";
