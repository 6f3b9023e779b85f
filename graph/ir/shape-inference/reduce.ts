import { DataType } from "../dtype.ts";
import type { Dim } from "../types.ts";
import type { NodeContext, RuleTable, ShapeRule } from "./context.ts";
import { normalizeAxis } from "./dims.ts";

/** Ops along one or more axes: reductions, ArgMax/ArgMin, TopK, and the shape-keeping Softmax, CumSum, Trilu. */

const REDUCTIONS = ["ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"];
const SHAPE_KEEPING = ["Softmax", "LogSoftmax", "Hardmax", "CumSum", "Trilu"];

/** Axes moved from attribute to input in opset 13 for ReduceSum and in 18 for the others. */
function reduceAxes(ctx: NodeContext): number[] | undefined | "unknown" {
  const fromInput = ctx.opset() >= (ctx.node.op === "ReduceSum" ? 13 : 18);
  if (!fromInput) return ctx.node.attrInts("axes");
  if (!ctx.has(1)) return undefined;
  return ctx.knownInts(1) ?? "unknown";
}

const reduce: ShapeRule = (ctx) => {
  const input = ctx.shape(0);
  const keep = ctx.node.attrInt("keepdims", 1) === 1;
  const axes = reduceAxes(ctx);
  const noop = ctx.node.attrInt("noop_with_empty_axes", 0) === 1;
  if (!input || (axes === "unknown" && !keep)) return ctx.setOutput(0, ctx.dtype(0), undefined);
  if (axes === "unknown") return ctx.setOutput(0, ctx.dtype(0), input.map(() => undefined));
  if ((!axes || axes.length === 0) && noop) return ctx.passThrough(0, 0);
  const reduced = new Set((axes && axes.length > 0 ? axes : input.map((_, i) => i)).map((a) => normalizeAxis(a, input.length)));
  ctx.setOutput(0, ctx.dtype(0), reducedShape(input, reduced, keep));
};

function reducedShape(input: Dim[], axes: Set<number>, keep: boolean): Dim[] {
  return input.flatMap((d, i) => (!axes.has(i) ? [d] : keep ? [1] : []));
}

const argReduce: ShapeRule = (ctx) => {
  const input = ctx.shape(0);
  const keep = ctx.node.attrInt("keepdims", 1) === 1;
  const axis = input ? normalizeAxis(ctx.node.attrInt("axis", 0), input.length) : 0;
  ctx.setOutput(0, DataType.INT64, input && reducedShape(input, new Set([axis]), keep));
};

/** TopK: values and int64 indices, `k` wide along the axis. */
const topK: ShapeRule = (ctx) => {
  const input = ctx.shape(0);
  const k = ctx.opset() < 10 ? ctx.node.attrInt("k") : ctx.knownScalar(1);
  const axis = input ? normalizeAxis(ctx.node.attrInt("axis", -1), input.length) : 0;
  const out = input?.map((d, i) => (i === axis ? k : d));
  ctx.setOutput(0, ctx.dtype(0), out);
  ctx.setOutput(1, DataType.INT64, out);
};

const keepShape: ShapeRule = (ctx) => ctx.passThrough(0, 0);

export const reduceRules: RuleTable = {
  ...Object.fromEntries(REDUCTIONS.map((op) => [op, reduce])),
  ...Object.fromEntries(SHAPE_KEEPING.map((op) => [op, keepShape])),
  ArgMax: argReduce,
  ArgMin: argReduce,
  TopK: topK,
};
