import { describe, expect, it } from "vitest";
import { Builder, DataType, Graph, type TensorType, type Value } from "../graph/ir/index.ts";
import { inferShapes, matmulShape } from "../graph/ir/shape-inference/index.ts";

const shapeOf = (v: Value) => (v.type as TensorType).shape;

describe("shape inference: matrix products", () => {
  it("follows numpy.matmul for batched, broadcast and 1-D operands", () => {
    expect(matmulShape(["B", "H", "S", 16], ["B", "H", 16, "T"])).toEqual(["B", "H", "S", "T"]);
    expect(matmulShape(["B", "S", 64], [64, 256])).toEqual(["B", "S", 256]);
    expect(matmulShape([1, "H", "S", 16], ["B", 1, 16, "T"])).toEqual(["B", "H", "S", "T"]);
    expect(matmulShape([64], [64, 10])).toEqual([10]);
    expect(matmulShape(["S", 64], [64])).toEqual(["S"]);
    expect(matmulShape([64], [64])).toEqual([]);
    expect(matmulShape(undefined, [64, 10])).toBeUndefined();
  });

  it("types MatMul, Gemm (transposes) and MatMulNBits", () => {
    const g = new Graph();
    const b = new Builder(g);
    const x = b.input("x", DataType.FLOAT, ["B", "S", 64]);
    const mm = b.op.MatMul(x, b.input("w", DataType.FLOAT, [64, 256]));
    const flat = b.input("flat", DataType.FLOAT, ["N", 64]);
    const gemm = b.op.Gemm(flat, b.input("wt", DataType.FLOAT, [192, 64]), b.input("c", DataType.FLOAT, [192]), { transB: 1 });
    const gemmA = b.op.Gemm(b.input("at", DataType.FLOAT, [64, "N"]), b.input("w2", DataType.FLOAT, [64, 32]), { transA: 1 });
    const nbits = b.domain("com.microsoft").MatMulNBits(x, b.input("q", DataType.UINT8, [512, 2, 16]), b.input("s", DataType.FLOAT, [1024]), { K: 64, N: 512, bits: 4, block_size: 32 });
    const int = b.op.MatMulInteger(b.input("a8", DataType.UINT8, ["S", 64]), b.input("b8", DataType.INT8, [64, 16]));
    inferShapes(g);
    expect(int.type).toEqual({ kind: "tensor", dtype: DataType.INT32, shape: ["S", 16] });
    expect(mm.type).toEqual({ kind: "tensor", dtype: DataType.FLOAT, shape: ["B", "S", 256] });
    expect(shapeOf(gemm)).toEqual(["N", 192]);
    expect(shapeOf(gemmA)).toEqual(["N", 32]);
    expect(shapeOf(nbits)).toEqual(["B", "S", 512]);
  });
});
