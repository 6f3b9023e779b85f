// The distribution a token is actually drawn from: the configured processors applied to
// one row of logits, then a softmax. Verification must judge the target's and the draft's
// proposals by exactly these warped distributions (p and q), or sampling stops being
// lossless; both ends build theirs here, in the same order createSampler uses.
import { composeProcessors, repetitionPenalty, temperature, topK, topP, type LogitsProcessor, type ProcessorContext } from "../sampling/processors.ts";
import type { SamplingConfig } from "../sampling/sampler.ts";

export interface Warp {
  /** Greedy decoding: the token is the argmax of the processed logits; no probabilities are needed. */
  readonly greedy: boolean;
  /** Greedy with nothing to process: the raw logits' argmax decides, so the argmax is all a step needs. */
  readonly argmaxOnly: boolean;
  /** Rewrites `logits` in place into the processed logits (penalty, extra processors, then temperature / top-k / top-p). */
  readonly process: LogitsProcessor;
}

export function createWarp(config: SamplingConfig, vocabSize: number, extra: readonly LogitsProcessor[] = []): Warp {
  const chain: LogitsProcessor[] = [];
  if (config.repetitionPenalty !== undefined && config.repetitionPenalty !== 1) chain.push(repetitionPenalty(config.repetitionPenalty, vocabSize));
  chain.push(...extra);
  const greedy = !config.temperature;
  if (!greedy) {
    chain.push(temperature(config.temperature!));
    if (config.topK !== undefined) chain.push(topK(config.topK, vocabSize));
    if (config.topP !== undefined) chain.push(topP(config.topP, vocabSize));
  }
  return { greedy, argmaxOnly: greedy && chain.length === 0, process: composeProcessors(...chain) };
}

/** Processed logits -> probabilities, in place (masked tokens get 0). */
export function softmaxInPlace(values: Float32Array): Float32Array {
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) if (values[i] > max) max = values[i];
  let total = 0;
  for (let i = 0; i < values.length; i++) {
    values[i] = Math.exp(values[i] - max);
    total += values[i];
  }
  for (let i = 0; i < values.length; i++) values[i] /= total;
  return values;
}

/** Warped probabilities of one row (a fresh array; `logits` is left untouched). */
export function warpedProbabilities(warp: Warp, logits: Float32Array, context: ProcessorContext): Float32Array {
  const row = Float32Array.from(logits);
  warp.process(row, context);
  return softmaxInPlace(row);
}
