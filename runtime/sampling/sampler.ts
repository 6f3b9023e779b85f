// Choosing the next token from one position's logits: greedy (argmax) or sampling from
// the softmax after the configured processors, with a seeded RNG.
import { RuntimeError } from "../errors.ts";
import { composeProcessors, repetitionPenalty, temperature, topK, topP, type LogitsProcessor, type ProcessorContext } from "./processors.ts";
import { createRng, type Rng } from "./rng.ts";

export interface SamplingConfig {
  /** Absent or 0: greedy. */
  temperature?: number;
  topK?: number;
  topP?: number;
  repetitionPenalty?: number;
  /** Same seed, same tokens. A random seed when absent. */
  seed?: number;
}

export type Sampler = (logits: Float32Array, context: ProcessorContext) => number;

export function argmax(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/** Draws an index with probability softmax(logits); -Infinity entries are never drawn. */
export function sampleSoftmax(logits: Float32Array, rng: Rng): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let total = 0;
  for (let i = 0; i < logits.length; i++) total += Math.exp(logits[i] - max);
  let r = rng() * total;
  let last = 0;
  for (let i = 0; i < logits.length; i++) {
    if (logits[i] === -Infinity) continue;
    last = i;
    r -= Math.exp(logits[i] - max);
    if (r < 0) return i;
  }
  return last; // rounding left a sliver of mass: the last candidate takes it
}

/**
 * A sampler for `config`, plus any extra processors (applied after the penalty and before
 * temperature, top-k and top-p). `vocabSize` sizes the scratch buffers once.
 */
export function createSampler(config: SamplingConfig, vocabSize: number, extra: LogitsProcessor[] = []): Sampler {
  const before: LogitsProcessor[] = [];
  if (config.repetitionPenalty !== undefined && config.repetitionPenalty !== 1) before.push(repetitionPenalty(config.repetitionPenalty, vocabSize));
  before.push(...extra);
  const greedy = !config.temperature;
  if (greedy) {
    const process = composeProcessors(...before);
    return (logits, context) => {
      process(logits, context);
      return argmax(logits);
    };
  }
  const after: LogitsProcessor[] = [temperature(config.temperature!)];
  if (config.topK !== undefined) after.push(topK(config.topK, vocabSize));
  if (config.topP !== undefined) after.push(topP(config.topP, vocabSize));
  const process = composeProcessors(...before, ...after);
  const rng = createRng(config.seed ?? Math.floor(Math.random() * 2 ** 32));
  return (logits, context) => {
    process(logits, context);
    return sampleSoftmax(logits, rng);
  };
}

/** Parses the CLI form: `greedy` or `temperature=0.8,top_k=40,top_p=0.9,repetition_penalty=1.1,seed=1`. */
export function parseSampling(text: string): SamplingConfig {
  if (text.trim() === "greedy") return {};
  const config: SamplingConfig = {};
  for (const part of text.split(",")) {
    const [key, raw, ...rest] = part.split("=").map((s) => s.trim());
    const value = Number(raw);
    if (rest.length || raw === undefined || raw === "" || !Number.isFinite(value)) {
      throw new RuntimeError("bad-sampling", `--sampling: expected key=number, got "${part}" (keys: temperature, top_k, top_p, repetition_penalty, seed)`);
    }
    switch (key) {
      case "temperature": config.temperature = value; break;
      case "top_k": config.topK = value; break;
      case "top_p": config.topP = value; break;
      case "repetition_penalty": config.repetitionPenalty = value; break;
      case "seed": config.seed = value; break;
      default: throw new RuntimeError("bad-sampling", `--sampling: unknown key "${key}" (keys: temperature, top_k, top_p, repetition_penalty, seed)`);
    }
  }
  if (config.temperature === undefined) throw new RuntimeError("bad-sampling", "--sampling: give temperature=T (> 0) to sample, or 'greedy'");
  return config;
}
