import { PipecError } from "../errors.ts";

/** How attention (and the norms around it) is spelled in the graph. */
export type AttentionEncoding = "decomposed" | "ms" | "standard";
export const ENCODINGS: readonly AttentionEncoding[] = ["decomposed", "ms", "standard"];

/**
 * Which pair of head-dim lanes rotary rotates together: `interleaved` rotates (2i, 2i+1) as
 * llama2.c and GPT-J do; `half` rotates (i, i + D/2) as Hugging Face Llama does.
 */
export type RotaryLayout = "interleaved" | "half";

interface CommonConfig {
  vocabSize: number;
  hidden: number;
  layers: number;
  heads: number;
  maxPositions: number;
  /** Seed of the generated weights; the same config and seed give the same bytes. */
  seed: number;
  bosTokenId: number;
  eosTokenId: number;
}

export interface LlamaConfig extends CommonConfig {
  family: "llama";
  kvHeads: number;
  intermediate: number;
  ropeTheta: number;
  rotary: RotaryLayout;
  rmsEps: number;
  /** Bias on the q/k/v projections, as Qwen2 has. */
  qkvBias: boolean;
  /** The classifier reuses the token embedding. */
  tiedEmbeddings: boolean;
}

export interface Gpt2Config extends CommonConfig {
  family: "gpt2";
  /** The MLP's inner width (GPT-2 uses 4 x hidden). */
  intermediate: number;
  layerNormEps: number;
}

export type ZooConfig = LlamaConfig | Gpt2Config;

export function headDim(c: ZooConfig): number {
  return c.hidden / c.heads;
}

export function kvHeads(c: ZooConfig): number {
  return c.family === "llama" ? c.kvHeads : c.heads;
}

const COMMON_DEFAULTS = { maxPositions: 512, seed: 1, bosTokenId: 1, eosTokenId: 2 };

export function llamaConfig(overrides: Partial<Omit<LlamaConfig, "family">> = {}): LlamaConfig {
  return validateConfig({
    family: "llama",
    vocabSize: 256,
    hidden: 64,
    layers: 2,
    heads: 4,
    kvHeads: 2,
    intermediate: 160,
    ropeTheta: 10000,
    rotary: "half",
    rmsEps: 1e-5,
    qkvBias: false,
    tiedEmbeddings: false,
    ...COMMON_DEFAULTS,
    ...overrides,
  });
}

export function gpt2Config(overrides: Partial<Omit<Gpt2Config, "family">> = {}): Gpt2Config {
  return validateConfig({
    family: "gpt2",
    vocabSize: 256,
    hidden: 64,
    layers: 2,
    heads: 4,
    intermediate: 256,
    layerNormEps: 1e-5,
    ...COMMON_DEFAULTS,
    ...overrides,
  });
}

/** Checks the shape arithmetic a graph would otherwise fail on at session creation. */
export function validateConfig<C extends ZooConfig>(c: C): C {
  const positive = ["vocabSize", "hidden", "layers", "heads", "intermediate", "maxPositions"] as const;
  for (const key of positive) {
    if (!Number.isInteger(c[key]) || c[key] <= 0) throw new PipecError("zoo-config", `${key} must be a positive integer, got ${c[key]}`);
  }
  if (c.hidden % c.heads !== 0) throw new PipecError("zoo-config", `hidden (${c.hidden}) must be a multiple of heads (${c.heads})`);
  if (c.family === "llama") {
    if (!Number.isInteger(c.kvHeads) || c.kvHeads <= 0 || c.heads % c.kvHeads !== 0) {
      throw new PipecError("zoo-config", `heads (${c.heads}) must be a multiple of kvHeads (${c.kvHeads})`);
    }
    if (headDim(c) % 2 !== 0) throw new PipecError("zoo-config", `rotary needs an even head dim, got ${headDim(c)}`);
  }
  return c;
}

/** Number of weights, counting a tied embedding once. */
export function parameterCount(c: ZooConfig): number {
  const D = headDim(c);
  const embed = c.vocabSize * c.hidden;
  if (c.family === "llama") {
    const kv = c.kvHeads * D;
    const attn = c.hidden * c.hidden * 2 + c.hidden * kv * 2 + (c.qkvBias ? c.hidden + 2 * kv : 0);
    const mlp = 3 * c.hidden * c.intermediate;
    return embed * (c.tiedEmbeddings ? 1 : 2) + c.layers * (attn + mlp + 2 * c.hidden) + c.hidden;
  }
  const attn = 4 * c.hidden * c.hidden + 4 * c.hidden;
  const mlp = 2 * c.hidden * c.intermediate + c.intermediate + c.hidden;
  return embed + c.maxPositions * c.hidden + c.layers * (attn + mlp + 4 * c.hidden) + 2 * c.hidden;
}
