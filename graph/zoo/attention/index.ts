import type { AttentionEncoding } from "../config.ts";
import { decomposedAttention } from "./decomposed.ts";
import { msFusedAttention } from "./ms-fused.ts";
import { standardAttention } from "./standard.ts";
import type { AttentionEncoder } from "./types.ts";

export type { AttentionEncoder, AttentionSpec, LayerAttentionInputs, LayerAttentionOutputs } from "./types.ts";

export const ATTENTION_ENCODERS: Record<AttentionEncoding, AttentionEncoder> = {
  decomposed: decomposedAttention,
  ms: msFusedAttention,
  standard: standardAttention,
};

/** The opsets each encoding's graph imports. */
export const ENCODING_OPSETS: Record<AttentionEncoding, Record<string, number>> = {
  decomposed: { "": 18 },
  ms: { "": 21, "com.microsoft": 1 },
  standard: { "": 23 },
};
