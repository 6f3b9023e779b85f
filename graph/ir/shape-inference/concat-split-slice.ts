import { addDims, divDims, subDims } from "../symbolic-dim.ts";
import type { Dim } from "../types.ts";
import type { NodeContext, RuleTable, ShapeRule } from "./context.ts";
import { normalizeAxis, unifyDims } from "./dims.ts";

/** Ops that join or cut tensors along an axis: Concat, Split, Slice. */

const concat: ShapeRule = (ctx) => {
  const shapes = ctx.node.inputs.map((_, i) => ctx.shape(i));
  const dtype = ctx.node.inputs.map((_, i) => ctx.dtype(i)).find((d) => d !== undefined);
  const ranked = shapes.find((s) => s !== undefined);
  if (!ranked) return ctx.setOutput(0, dtype, undefined);
  const rank = ranked.length;
  const axis = normalizeAxis(ctx.node.attrInt("axis", 0), rank);
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    if (i === axis) out.push(shapes.reduce<Dim>((sum, s) => addDims(sum, s?.[i]), 0));
    else out.push(shapes.reduce<Dim>((d, s) => unifyDims(d, s?.[i]), undefined));
  }
  ctx.setOutput(0, dtype, out);
  const known = ctx.node.inputs.map((_, i) => ctx.known(i));
  if (rank === 1 && known.every((k) => k !== undefined)) ctx.setKnown(0, known.flat());
};

/**
 * Split sizes come from the `split` attribute (before opset 13), the second input (13+), or an
 * even split over the outputs (`num_outputs` in 18+, where the last chunk may be smaller).
 */
const split: ShapeRule = (ctx) => {
  const input = ctx.shape(0);
  const n = ctx.node.outputs.length;
  const dtype = ctx.dtype(0);
  if (!input) {
    for (let i = 0; i < n; i++) ctx.setOutput(i, dtype, undefined);
    return;
  }
  const axis = normalizeAxis(ctx.node.attrInt("axis", 0), input.length);
  const sizes = splitSizes(ctx, input[axis], n);
  for (let i = 0; i < n; i++) ctx.setOutput(i, dtype, input.map((d, j) => (j === axis ? sizes[i] : d)));
};

function splitSizes(ctx: NodeContext, total: Dim, n: number): Dim[] {
  const given = ctx.opset() < 13 ? ctx.node.attrInts("split") : ctx.has(1) ? ctx.known(1) : undefined;
  if (given) return given;
  if (ctx.has(1)) return new Array<Dim>(n).fill(undefined);
  if (typeof total === "number" && ctx.node.attrInt("num_outputs") !== undefined) {
    const chunk = Math.ceil(total / n);
    return Array.from({ length: n }, (_, i) => Math.max(0, Math.min(chunk, total - i * chunk)));
  }
  return new Array<Dim>(n).fill(divDims(total, n));
}

/** Slice bounds are clamped to the dim; huge ends (INT64_MAX and friends) mean "to the end". */
const slice: ShapeRule = (ctx) => {
  const input = ctx.shape(0);
  const params = sliceParams(ctx);
  if (!input || !params) return ctx.setOutput(0, ctx.dtype(0), input && input.map(() => undefined));
  const out: Dim[] = [...input];
  params.axes.forEach((a, i) => {
    const axis = normalizeAxis(a, input.length);
    out[axis] = slicedDim(input[axis], params.starts[i], params.ends[i], params.steps[i] ?? 1);
  });
  ctx.setOutput(0, ctx.dtype(0), out);
  const k = ctx.known(0);
  const [start, end, step] = [params.starts[0], params.ends[0], params.steps[0] ?? 1];
  if (k && input.length === 1 && typeof start === "number" && typeof end === "number" && typeof step === "number") {
    ctx.setKnown(0, sliceElements(k, start, end, step));
  }
};

interface SliceParams {
  starts: Dim[];
  ends: Dim[];
  axes: number[];
  steps: Dim[];
}

function sliceParams(ctx: NodeContext): SliceParams | undefined {
  const n = ctx.node;
  if (ctx.opset() < 10) {
    const [starts, ends] = [n.attrInts("starts"), n.attrInts("ends")];
    if (!starts || !ends) return undefined;
    return { starts, ends, axes: n.attrInts("axes") ?? starts.map((_, i) => i), steps: [] };
  }
  const [starts, ends] = [ctx.known(1), ctx.known(2)];
  if (!starts || !ends) return undefined;
  const axes = ctx.has(3) ? ctx.knownInts(3) : starts.map((_, i) => i);
  const steps = ctx.has(4) ? ctx.known(4) : [];
  if (!axes || !steps) return undefined;
  return { starts, ends, axes, steps };
}

const HUGE = 2 ** 30;

function slicedDim(dim: Dim, start: Dim, end: Dim, step: Dim): Dim {
  if (step === 0) return undefined;
  if (typeof dim === "number" && typeof start === "number" && typeof end === "number" && typeof step === "number") {
    const [from, to] = sliceBounds(dim, start, end, step);
    return Math.max(0, Math.ceil((to - from) / step));
  }
  if (step !== 1) return undefined;
  // Symbolic: assume the bounds lie inside the dim, as exported graphs slice caches and shapes.
  const bound = (x: Dim, big: Dim) => (typeof x !== "number" ? x : x >= HUGE ? dim : x <= -HUGE ? big : x < 0 ? addDims(dim, x) : x);
  return subDims(bound(end, 0), bound(start, 0));
}

/** Start and end clamped as ONNX Slice does for a dim of size `n`. */
function sliceBounds(n: number, start: number, end: number, step: number): [number, number] {
  const clamp = (x: number, lo: number, hi: number) => Math.min(Math.max(x < 0 ? x + n : x, lo), hi);
  return step > 0 ? [clamp(start, 0, n), clamp(end, 0, n)] : [clamp(start, -1, n - 1), clamp(end, -1, n - 1)];
}

function sliceElements<T>(elems: T[], start: number, end: number, step: number): T[] {
  const [from, to] = sliceBounds(elems.length, start, end, step);
  const out: T[] = [];
  if (step === 0) return out;
  for (let i = from; step > 0 ? i < to : i > to; i += step) out.push(elems[i]);
  return out;
}

export const concatSplitSliceRules: RuleTable = {
  Concat: concat,
  Split: split,
  Slice: slice,
};
