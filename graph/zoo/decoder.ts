import { Builder } from "../ir/builder.ts";
import { DataType } from "../ir/dtype.ts";
import { Model } from "../ir/model.ts";
import type { Value } from "../ir/value.ts";
import { ATTENTION_ENCODERS, ENCODING_OPSETS, type AttentionSpec, type LayerAttentionInputs, type LayerAttentionOutputs } from "./attention/index.ts";
import type { AttentionEncoding } from "./config.ts";
import type { DecoderInputs } from "./mask.ts";
import type { WeightSource, WeightInit } from "./weights.ts";

const B = "batch_size";
const S = "sequence_length";
const P = "past_sequence_length";
const T = "total_sequence_length";

/** What a family's layer code gets: the builder, the inputs, a weight getter and attention. */
export interface DecoderContext {
  b: Builder;
  inputs: DecoderInputs;
  weight(name: string, dims: readonly number[], init: WeightInit): Value;
  /** Layer i's attention over its own cache inputs; the caller adds the output projection. */
  attend(layer: number, qkv: Pick<LayerAttentionInputs, "q" | "k" | "v">): Value;
}

export interface DecoderShape {
  layers: number;
  vocabSize: number;
  attention: AttentionSpec;
  encoding: AttentionEncoding;
  /** Take inputs_embeds [B, S, width] instead of input_ids (a vision-language decoder). */
  embedsWidth?: number;
}

/**
 * The Optimum-convention shell every family shares: inputs input_ids (or inputs_embeds) / attention_mask /
 * position_ids / past_key_values.{i}.key|value, outputs logits and present.{i}.key|value.
 * `body` maps the inputs to logits [B, S, V] using `ctx`.
 */
export function buildDecoder(shape: DecoderShape, weights: WeightSource, body: (ctx: DecoderContext) => Value): Model {
  const model = new Model({ opsets: ENCODING_OPSETS[shape.encoding] });
  const b = new Builder(model.graph);
  const { kvHeads, headDim } = shape.attention;
  const inputs: DecoderInputs = {
    ...(shape.embedsWidth === undefined ? { inputIds: b.input("input_ids", DataType.INT64, [B, S]) } : { inputsEmbeds: b.input("inputs_embeds", DataType.FLOAT, [B, S, shape.embedsWidth]) }),
    attentionMask: b.input("attention_mask", DataType.INT64, [B, T]),
    positionIds: b.input("position_ids", DataType.INT64, [B, S]),
  };
  const past = Array.from({ length: shape.layers }, (_, i) => ({
    key: b.input(`past_key_values.${i}.key`, DataType.FLOAT, [B, kvHeads, P, headDim]),
    value: b.input(`past_key_values.${i}.value`, DataType.FLOAT, [B, kvHeads, P, headDim]),
  }));
  const layerAttention = ATTENTION_ENCODERS[shape.encoding](b, shape.attention, inputs);
  const presents: LayerAttentionOutputs[] = [];
  const ctx: DecoderContext = {
    b,
    inputs,
    weight: (name, dims, init) => model.graph.addInitializer(weights.weight(name, dims, init), name),
    attend: (layer, qkv) => {
      const out = layerAttention({ ...qkv, pastKey: past[layer].key, pastValue: past[layer].value });
      presents[layer] = out;
      return out.output;
    },
  };
  const logits = body(ctx);
  b.output(b.typed(logits, DataType.FLOAT, [B, S, shape.vocabSize]), "logits");
  presents.forEach((p, i) => {
    b.output(b.typed(p.presentKey, DataType.FLOAT, [B, kvHeads, T, headDim]), `present.${i}.key`);
    b.output(b.typed(p.presentValue, DataType.FLOAT, [B, kvHeads, T, headDim]), `present.${i}.value`);
  });
  return model;
}
