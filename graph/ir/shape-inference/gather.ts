import { DataType } from "../dtype.ts";
import type { Dim } from "../types.ts";
import type { RuleTable, ShapeRule } from "./context.ts";
import { normalizeAxis } from "./dims.ts";

/** Indexing ops: Gather, GatherElements, GatherND, the scatters (which keep the data's type) and NonZero. */

/** data[..axis-1] ++ indices ++ data[axis+1..] */
const gather: ShapeRule = (ctx) => {
  const [data, indices] = [ctx.shape(0), ctx.shape(1)];
  if (!data || !indices) return ctx.setOutput(0, ctx.dtype(0), undefined);
  const axis = normalizeAxis(ctx.node.attrInt("axis", 0), data.length);
  ctx.setOutput(0, ctx.dtype(0), [...data.slice(0, axis), ...indices, ...data.slice(axis + 1)]);
  // Shape(x)[i]: picking dims out of a known shape vector.
  const [k, at] = [ctx.known(0), ctx.knownInts(1)];
  if (k && at && data.length === 1) ctx.setKnown(0, at.map((i) => k[i < 0 ? i + k.length : i]));
};

const gatherElements: ShapeRule = (ctx) => ctx.setOutput(0, ctx.dtype(0), ctx.shape(1));

/** indices[..-1] ++ data[batch_dims + indices[-1]..] */
const gatherND: ShapeRule = (ctx) => {
  const [data, indices] = [ctx.shape(0), ctx.shape(1)];
  const depth = indices?.[indices.length - 1];
  if (!data || !indices || typeof depth !== "number") return ctx.setOutput(0, ctx.dtype(0), undefined);
  const batchDims = ctx.node.attrInt("batch_dims", 0);
  const out: Dim[] = [...indices.slice(0, -1), ...data.slice(batchDims + depth)];
  ctx.setOutput(0, ctx.dtype(0), out);
};

/** NonZero: int64 coordinates [rank, count], the count known only at run time. */
const nonZero: ShapeRule = (ctx) => ctx.setOutput(0, DataType.INT64, [ctx.rank(0), undefined]);

const scatter: ShapeRule = (ctx) => ctx.passThrough(0, 0);

export const gatherRules: RuleTable = {
  ScatterND: scatter,
  ScatterElements: scatter,
  NonZero: nonZero,
  Gather: gather,
  GatherElements: gatherElements,
  GatherND: gatherND,
};
