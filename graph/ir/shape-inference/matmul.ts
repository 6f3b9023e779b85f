import { DataType } from "../dtype.ts";
import type { Dim } from "../types.ts";
import type { RuleTable, ShapeRule } from "./context.ts";
import { broadcastShapes, unifyDims } from "./dims.ts";

/** Matrix products: MatMul (numpy semantics), MatMulInteger, Gemm, and 4-bit-weight MatMulNBits. */

/** numpy.matmul: 1-D operands are promoted and the added axis dropped; batch axes broadcast. */
export function matmulShape(a: Dim[] | undefined, b: Dim[] | undefined): Dim[] | undefined {
  if (!a || !b || a.length === 0 || b.length === 0) return undefined;
  const lhs = a.length === 1 ? [1, a[0]] : a;
  const rhs = b.length === 1 ? [b[0], 1] : b;
  const batch = broadcastShapes([lhs.slice(0, -2), rhs.slice(0, -2)]);
  if (!batch) return undefined;
  const out = [...batch, lhs[lhs.length - 2], rhs[rhs.length - 1]];
  if (b.length === 1) out.splice(out.length - 1, 1);
  if (a.length === 1) out.splice(out.length - (b.length === 1 ? 1 : 2), 1);
  return out;
}

const matmul: ShapeRule = (ctx) => ctx.setOutput(0, ctx.dtype(0) ?? ctx.dtype(1), matmulShape(ctx.shape(0), ctx.shape(1)));

/** Y[M, N] = alpha * A'[M, K] B'[K, N] + beta * C. */
const gemm: ShapeRule = (ctx) => {
  const [a, b] = [ctx.shape(0), ctx.shape(1)];
  const m = a?.length === 2 ? a[ctx.node.attrInt("transA", 0) ? 1 : 0] : undefined;
  let n = b?.length === 2 ? b[ctx.node.attrInt("transB", 0) ? 0 : 1] : undefined;
  // The bias broadcasts to [M, N], so a full-width bias names N when B's shape is unknown.
  const c = ctx.shape(2);
  if (c && c.length > 0 && c[c.length - 1] !== 1) n = unifyDims(n, c[c.length - 1]);
  ctx.setOutput(0, ctx.dtype(0) ?? ctx.dtype(1), [m, n]);
};

/** com.microsoft MatMulNBits: A[..., K] times a packed [N, K] weight gives [..., N]. */
const matmulNBits: ShapeRule = (ctx) => {
  const a = ctx.shape(0);
  const n = ctx.node.attrInt("N");
  ctx.setOutput(0, ctx.dtype(0), a && a.length > 0 ? [...a.slice(0, -1), n] : undefined);
};

/** MatMulInteger accumulates 8-bit operands in int32. */
const matmulInteger: ShapeRule = (ctx) => ctx.setOutput(0, DataType.INT32, matmulShape(ctx.shape(0), ctx.shape(1)));

export const matmulRules: RuleTable = {
  MatMul: matmul,
  MatMulInteger: matmulInteger,
  Gemm: gemm,
  "com.microsoft::MatMulNBits": matmulNBits,
};
