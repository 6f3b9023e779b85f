import { DataType } from "../dtype.ts";
import { productOfDims, subDims } from "../symbolic-dim.ts";
import { Tensor } from "../tensor.ts";
import type { Dim } from "../types.ts";
import { MAX_KNOWN_ELEMENTS, tensorElements, type NodeContext, type RuleTable, type ShapeRule } from "./context.ts";
import { normalizeAxis, unknownDims } from "./dims.ts";

/**
 * Ops that make or convert the small tensors shape computations are built from: Shape, Size,
 * Constant, ConstantOfShape, Range, Cast, CastLike. Each records the output's contents when known.
 */

const shape: ShapeRule = (ctx) => {
  const input = ctx.shape(0);
  if (!input) return ctx.setOutput(0, DataType.INT64, [undefined]);
  const clamp = (x: number) => Math.min(Math.max(normalizeAxis(x, input.length), 0), input.length);
  const start = clamp(ctx.node.attrInt("start", 0));
  const end = clamp(ctx.node.attrInt("end", input.length));
  const dims = input.slice(start, Math.max(start, end));
  ctx.setOutput(0, DataType.INT64, [dims.length]);
  ctx.setKnown(0, dims);
};

const size: ShapeRule = (ctx) => {
  ctx.setOutput(0, DataType.INT64, []);
  const input = ctx.shape(0);
  if (input) ctx.setKnown(0, [productOfDims(input)]);
};

const constant: ShapeRule = (ctx) => {
  const n = ctx.node;
  const value = n.attr("value");
  if (value instanceof Tensor) return constantTensor(ctx, value);
  if (n.attributes.has("value_int")) return scalar(ctx, DataType.INT64, n.attrInt("value_int")!);
  if (n.attributes.has("value_float")) return scalar(ctx, DataType.FLOAT, n.attrFloat("value_float")!);
  if (n.attributes.has("value_ints")) return vector(ctx, DataType.INT64, n.attrInts("value_ints")!);
  if (n.attributes.has("value_floats")) return vector(ctx, DataType.FLOAT, n.attr("value_floats") as number[]);
};

function constantTensor(ctx: NodeContext, t: Tensor): void {
  ctx.setOutput(0, t.dtype, t.dims);
  if (t.elementCount > MAX_KNOWN_ELEMENTS || t.dims.length > 1) return;
  if (t.dtype === DataType.FLOAT16 || t.dtype === DataType.BFLOAT16 || t.dtype === DataType.STRING) return;
  try {
    ctx.setKnown(0, tensorElements(t.toArray()));
  } catch {
    // An element type without a typed-array view: the shape is still right.
  }
}

function scalar(ctx: NodeContext, dtype: number, value: number): void {
  ctx.setOutput(0, dtype, []);
  ctx.setKnown(0, [value]);
}

function vector(ctx: NodeContext, dtype: number, values: number[]): void {
  ctx.setOutput(0, dtype, [values.length]);
  ctx.setKnown(0, values);
}

/** A tensor of the given shape filled with `value` (float 0 by default). */
const constantOfShape: ShapeRule = (ctx) => {
  const value = ctx.node.attr("value") as Tensor | undefined;
  const dtype = value?.dtype ?? DataType.FLOAT;
  const dims = ctx.known(0);
  const len = ctx.shape(0)?.[0];
  ctx.setOutput(0, dtype, dims ?? (typeof len === "number" ? unknownDims(len) : undefined));
  if (!dims || dims.length > 1) return;
  const count = dims.length === 0 ? 1 : dims[0];
  if (typeof count !== "number" || count > MAX_KNOWN_ELEMENTS) return;
  if (value && (value.dtype === DataType.FLOAT16 || value.dtype === DataType.BFLOAT16)) return;
  const fill = value ? tensorElements(value.toArray())[0] : 0;
  ctx.setKnown(0, new Array<Dim>(count).fill(fill));
};

/** Range(start, limit, delta): max(ceil((limit - start) / delta), 0) elements; symbolic only for delta 1. */
const range: ShapeRule = (ctx) => {
  const [start, limit, delta] = [ctx.knownScalar(0), ctx.knownScalar(1), ctx.knownScalar(2)];
  const dtype = ctx.dtype(0) ?? ctx.dtype(1);
  let count: Dim;
  if (typeof start === "number" && typeof limit === "number" && typeof delta === "number" && delta !== 0) {
    count = Math.max(Math.ceil((limit - start) / delta), 0);
    if (count <= MAX_KNOWN_ELEMENTS) ctx.setKnown(0, Array.from({ length: count }, (_, i) => start + i * delta));
  } else if (delta === 1) {
    count = subDims(limit, start);
  }
  ctx.setOutput(0, dtype, [count]);
};

const cast: ShapeRule = (ctx) => {
  ctx.setOutput(0, ctx.node.attrInt("to"), ctx.shape(0));
  passCastKnown(ctx, ctx.node.attrInt("to"));
};

const castLike: ShapeRule = (ctx) => {
  ctx.setOutput(0, ctx.dtype(1), ctx.shape(0));
  passCastKnown(ctx, ctx.dtype(1));
};

/** Integer and float casts keep the (integral) elements a shape computation holds; a bool cast tests for non-zero. */
function passCastKnown(ctx: NodeContext, to: number | undefined): void {
  const k = ctx.known(0);
  if (!k || to === undefined) return;
  if (to === DataType.BOOL) {
    if (k.every((d) => typeof d === "number")) ctx.setKnown(0, k.map((d) => (d !== 0 ? 1 : 0)));
    return;
  }
  const floatSource = ctx.dtype(0) === DataType.FLOAT || ctx.dtype(0) === DataType.DOUBLE;
  const floatTarget = to === DataType.FLOAT || to === DataType.DOUBLE;
  ctx.setKnown(0, floatSource && !floatTarget ? k.map((d) => (typeof d === "number" ? Math.trunc(d) : d)) : k);
}

export const shapeValueRules: RuleTable = {
  Shape: shape,
  Size: size,
  Constant: constant,
  ConstantOfShape: constantOfShape,
  Range: range,
  Cast: cast,
  CastLike: castLike,
};
