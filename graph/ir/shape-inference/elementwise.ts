import { DataType } from "../dtype.ts";
import { addDims, divDims, isNonNegative, mulDims, sameDim, subDims } from "../symbolic-dim.ts";
import type { Dim } from "../types.ts";
import type { NodeContext, RuleTable, ShapeRule } from "./context.ts";
import { broadcastShapes } from "./dims.ts";

/** Elementwise operators: unary ones keep their input's type; n-ary ones broadcast (numpy rules). */

const UNARY = [
  "Abs", "Neg", "Sqrt", "Reciprocal", "Exp", "Log", "Tanh", "Sigmoid", "Erf", "Relu", "Gelu", "Softplus", "Softsign",
  "Cos", "Sin", "Tan", "Acos", "Asin", "Atan", "Cosh", "Sinh", "Asinh", "Acosh", "Atanh", "Ceil", "Floor", "Round", "Sign",
  "Elu", "Selu", "Celu", "LeakyRelu", "HardSigmoid", "HardSwish", "Mish", "ThresholdedRelu", "Shrink", "Not", "BitwiseNot",
  "Clip", "Identity", "com.microsoft::QuickGelu", "com.microsoft::Gelu",
];
const SAME_TYPE_BROADCAST = [
  "Add", "Sub", "Mul", "Div", "Pow", "Mod", "Max", "Min", "Sum", "Mean", "PRelu", "BitShift", "BitwiseAnd", "BitwiseOr", "BitwiseXor",
  "com.microsoft::FastGelu", "com.microsoft::BiasGelu",
];
const BOOL_BROADCAST = ["Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "And", "Or", "Xor"];

/** Known-value arithmetic, so shape computations such as `Shape(x)[1] + 1` stay symbolic. */
const VALUE_OPS: Record<string, (a: Dim, b: Dim) => Dim> = {
  Add: addDims,
  Sub: subDims,
  Mul: mulDims,
  Div: divDims,
  Max: (a, b) => (typeof a === "number" && typeof b === "number" ? Math.max(a, b) : sameDim(a, b) ? a : undefined),
  Min: (a, b) => (typeof a === "number" && typeof b === "number" ? Math.min(a, b) : sameDim(a, b) ? a : undefined),
  Equal: (a, b) => (sameDim(a, b) ? 1 : provablyDifferent(a, b) ? 0 : undefined),
};

/** Two numbers that differ, or a size against a negative number (torch exports compare shapes with -1). */
function provablyDifferent(a: Dim, b: Dim): boolean {
  if (typeof a === "number" && typeof b === "number") return a !== b;
  return (typeof b === "number" && b < 0 && isNonNegative(a)) || (typeof a === "number" && a < 0 && isNonNegative(b));
}

const unary: ShapeRule = (ctx) => {
  ctx.passThrough(0, 0);
  const k = ctx.known(0);
  if (k && ctx.node.op === "Identity") ctx.setKnown(0, k);
  if (k && ctx.node.op === "Neg") ctx.setKnown(0, k.map((d) => subDims(0, d)));
};

const sameTypeBroadcast: ShapeRule = (ctx) => {
  ctx.setOutput(0, ctx.dtype(0) ?? ctx.dtype(1), broadcastInputs(ctx));
  propagateValues(ctx);
};

const boolBroadcast: ShapeRule = (ctx) => {
  ctx.setOutput(0, DataType.BOOL, broadcastInputs(ctx));
  propagateValues(ctx);
};

/** IsNaN, IsInf: a boolean mask of the input's shape. */
const predicate: ShapeRule = (ctx) => ctx.setOutput(0, DataType.BOOL, ctx.shape(0));

const where: ShapeRule = (ctx) => {
  ctx.setOutput(0, ctx.dtype(1) ?? ctx.dtype(2), broadcastInputs(ctx));
  const [cond, x, y] = [ctx.known(0), ctx.known(1), ctx.known(2)];
  if (!cond || !x || !y) return;
  const n = Math.max(cond.length, x.length, y.length);
  if (![cond, x, y].every((a) => a.length === n || a.length === 1)) return;
  const at = (a: Dim[], i: number) => a[a.length === 1 ? 0 : i];
  const out: Dim[] = [];
  for (let i = 0; i < n; i++) {
    const c = at(cond, i);
    out.push(c === undefined || typeof c === "string" ? undefined : c !== 0 ? at(x, i) : at(y, i));
  }
  ctx.setKnown(0, out);
};

/** Dropout in inference mode: the data passes through; the optional mask is boolean. */
const dropout: ShapeRule = (ctx) => {
  ctx.passThrough(0, 0);
  ctx.setOutput(1, DataType.BOOL, ctx.shape(0));
};

function broadcastInputs(ctx: NodeContext): Dim[] | undefined {
  return broadcastShapes(ctx.node.inputs.map((_, i) => (ctx.has(i) ? ctx.shape(i) : [])));
}

function propagateValues(ctx: NodeContext): void {
  const f = VALUE_OPS[ctx.node.op];
  const [a, b] = [ctx.known(0), ctx.known(1)];
  if (!f || !a || !b || ctx.inputCount !== 2) return;
  if (a.length !== b.length && a.length !== 1 && b.length !== 1) return;
  const n = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < n; i++) out.push(f(a[a.length === 1 ? 0 : i], b[b.length === 1 ? 0 : i]));
  ctx.setKnown(0, out);
}

/** QuantizeLinear: the zero point's type (uint8 without one); DequantizeLinear: the scale's. Shapes are the input's. */
const quantize: ShapeRule = (ctx) => ctx.setOutput(0, ctx.has(2) ? ctx.dtype(2) : DataType.UINT8, ctx.shape(0));
const dequantize: ShapeRule = (ctx) => ctx.setOutput(0, ctx.dtype(1), ctx.shape(0));

export const elementwiseRules: RuleTable = {
  QuantizeLinear: quantize,
  DequantizeLinear: dequantize,
  ...Object.fromEntries(UNARY.map((op) => [op, unary])),
  ...Object.fromEntries(SAME_TYPE_BROADCAST.map((op) => [op, sameTypeBroadcast])),
  ...Object.fromEntries(BOOL_BROADCAST.map((op) => [op, boolBroadcast])),
  IsNaN: predicate,
  IsInf: predicate,
  Where: where,
  Dropout: dropout,
};
