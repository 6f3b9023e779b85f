import type { Builder } from "../../ir/builder.ts";
import type { Value } from "../../ir/value.ts";
import type { RotaryLayout } from "../config.ts";
import type { DecoderInputs } from "../mask.ts";

/** What every layer's attention shares: head counts, rotary, how the scale is applied. */
export interface AttentionSpec {
  heads: number; // H
  kvHeads: number; // Hkv
  headDim: number; // D
  rotary?: { layout: RotaryLayout; theta: number; maxPositions: number };
  /** Decomposed only: `mul` by 1/sqrt(D) (Llama exports) or `div` by sqrt(D) (GPT-2 exports). */
  scaleOp: "mul" | "div";
}

/** One layer's projections and cache; q is [B, S, H*D], k and v [B, S, Hkv*D]. */
export interface LayerAttentionInputs {
  q: Value;
  k: Value;
  v: Value;
  pastKey: Value; // [B, Hkv, P, D]
  pastValue: Value;
}

export interface LayerAttentionOutputs {
  output: Value; // [B, S, H*D], before the output projection
  presentKey: Value; // [B, Hkv, P+S, D]
  presentValue: Value;
}

/**
 * An attention encoding: `prepare` builds what all layers share (mask, rotary tables, sequence
 * lengths) once and returns the per-layer attention.
 */
export type AttentionEncoder = (b: Builder, spec: AttentionSpec, inputs: DecoderInputs) => (layer: LayerAttentionInputs) => LayerAttentionOutputs;

export function attentionScale(spec: AttentionSpec): number {
  return 1 / Math.sqrt(spec.headDim);
}
