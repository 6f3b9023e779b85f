import { DataType } from "../dtype.ts";
import type { Dim } from "../types.ts";
import type { NodeContext, RuleTable, ShapeRule } from "./context.ts";
import { normalizeAxis } from "./dims.ts";

/**
 * Normalisations: the output has the input's type; the optional statistics outputs (mean,
 * inverse std) keep the leading axes and have 1 for the normalised ones, in the stash type.
 */

/** Shape of the statistics over axes [axis, rank). */
function statsShape(input: Dim[] | undefined, axis: number): Dim[] | undefined {
  if (!input) return undefined;
  const a = normalizeAxis(axis, input.length);
  return input.map((d, i) => (i < a ? d : 1));
}

function statsType(ctx: NodeContext): number {
  return ctx.node.attrInt("stash_type", DataType.FLOAT);
}

/** LayerNormalization: Y, Mean, InvStdDev. */
const layerNorm: ShapeRule = (ctx) => {
  ctx.passThrough(0, 0);
  const stats = statsShape(ctx.shape(0), ctx.node.attrInt("axis", -1));
  ctx.setOutput(1, statsType(ctx), stats);
  ctx.setOutput(2, statsType(ctx), stats);
};

/** SimplifiedLayerNormalization (RMS norm as onnxruntime fuses it): Y, InvStdDev. */
const simplifiedLayerNorm: ShapeRule = (ctx) => {
  ctx.passThrough(0, 0);
  ctx.setOutput(1, statsType(ctx), statsShape(ctx.shape(0), ctx.node.attrInt("axis", -1)));
};

/** Skip(Simplified)LayerNormalization: output, mean, inv_std_var, input_skip_bias_sum (the pre-norm sum). */
const skipLayerNorm: ShapeRule = (ctx) => {
  ctx.passThrough(0, 0);
  const stats = statsShape(ctx.shape(0), -1);
  ctx.setOutput(1, DataType.FLOAT, stats);
  ctx.setOutput(2, DataType.FLOAT, stats);
  ctx.passThrough(3, 0);
};

/** EmbedLayerNormalization: word + position (+ segment) embeddings of ids [B, S], normalised: [B, S, hidden]; mask_index [B]. */
const embedLayerNorm: ShapeRule = (ctx) => {
  const ids = ctx.shape(0);
  const hidden = ctx.shape(2)?.[1];
  const out = ids?.length === 2 ? [ids[0], ids[1], hidden] : undefined;
  ctx.setOutput(0, ctx.dtype(2), out);
  ctx.setOutput(1, DataType.INT32, ids?.length === 2 ? [ids[0]] : undefined);
  ctx.setOutput(2, ctx.dtype(2), out);
};

export const normalizationRules: RuleTable = {
  LayerNormalization: layerNorm,
  "com.microsoft::LayerNormalization": layerNorm,
  SimplifiedLayerNormalization: simplifiedLayerNorm,
  "com.microsoft::SimplifiedLayerNormalization": simplifiedLayerNorm,
  RMSNormalization: (ctx) => ctx.passThrough(0, 0),
  BatchNormalization: (ctx) => ctx.passThrough(0, 0),
  InstanceNormalization: (ctx) => ctx.passThrough(0, 0),
  GroupNormalization: (ctx) => ctx.passThrough(0, 0),
  "com.microsoft::SkipLayerNormalization": skipLayerNorm,
  "com.microsoft::SkipSimplifiedLayerNormalization": skipLayerNorm,
  "com.microsoft::EmbedLayerNormalization": embedLayerNorm,
};
