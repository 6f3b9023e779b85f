import type { Dim } from "../../../graph/ir/types.ts";
import type { Value } from "../../../graph/ir/value.ts";
import type { Rule } from "../../../graph/rewrite/index.ts";

/**
 * MatMul(A[M, K], W[K, N]) + bias  ->  Gemm(A, W, bias)
 *
 * Gemm is strictly 2-D, so A must be known to be 2-D (a batched [B, S, K] activation is not)
 * and W a 2-D constant; the bias must broadcast to [M, N] without adding dimensions, which is
 * what Gemm's C accepts ([N], [1, N], [M, 1], [M, N] or a scalar). Either Add operand order
 * matches.
 */
export const matmulAddToGemm: Rule = {
  name: "matmul-add-to-gemm",
  commute: true,
  pattern: (p) => p.op.Add(p.op.MatMul(p.var("a"), p.constant("w")), p.var("bias")),
  check(ctx, m) {
    const opset = ctx.model?.opset("");
    if (opset !== undefined && opset < 7) return `Gemm in opset ${opset} does not broadcast its bias`;
    const { a, bias } = m.values;
    const shapeA = shapeOf(a);
    if (!shapeA) return "MatMul input A has unknown rank; Gemm needs 2-D";
    if (shapeA.length !== 2) return `MatMul input A has rank ${shapeA.length}; Gemm needs 2-D`;
    const dimsW = m.tensor("w").dims;
    if (dimsW.length !== 2) return `MatMul weight has rank ${dimsW.length}; Gemm needs 2-D`;
    return biasFits(shapeOf(bias), shapeA[0], dimsW[1]!);
  },
  rewrite: (b, m) => b.op.Gemm(m.values.a, m.values.w, m.values.bias),
};

function shapeOf(v: Value): Dim[] | undefined {
  return v.type?.kind === "tensor" ? v.type.shape : undefined;
}

/** Whether a bias of `shape` broadcasts to [M, N] (Gemm's unidirectional broadcast of C). */
function biasFits(shape: Dim[] | undefined, M: Dim, N: number): true | string {
  if (!shape) return "bias has unknown shape; Gemm needs it to broadcast to [M, N]";
  if (shape.length > 2) return `bias has rank ${shape.length}; Gemm needs it to broadcast to [M, N]`;
  const [rows, cols] = shape.length === 2 ? shape : [1, shape[0] ?? 1];
  const fits = (d: Dim, want: Dim) => d === 1 || (d !== undefined && d === want);
  if (!fits(rows, M) || !fits(cols, N)) return `bias shape [${shape.join(", ")}] does not broadcast to [${M}, ${N}]`;
  return true;
}
