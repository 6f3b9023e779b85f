import { TensorProto_DataType as DT } from "../onnx/generated/onnx_pb.ts";

/** ONNX element types, by their TensorProto.DataType number. */
export { DT as DataType };

interface DTypeInfo {
  name: string;
  /** Bits per element (packed sub-byte types have 4 or 2). */
  bits: number;
}

const INFO: Record<number, DTypeInfo> = {
  [DT.FLOAT]: { name: "float", bits: 32 },
  [DT.UINT8]: { name: "uint8", bits: 8 },
  [DT.INT8]: { name: "int8", bits: 8 },
  [DT.UINT16]: { name: "uint16", bits: 16 },
  [DT.INT16]: { name: "int16", bits: 16 },
  [DT.INT32]: { name: "int32", bits: 32 },
  [DT.INT64]: { name: "int64", bits: 64 },
  [DT.STRING]: { name: "string", bits: 0 },
  [DT.BOOL]: { name: "bool", bits: 8 },
  [DT.FLOAT16]: { name: "float16", bits: 16 },
  [DT.DOUBLE]: { name: "double", bits: 64 },
  [DT.UINT32]: { name: "uint32", bits: 32 },
  [DT.UINT64]: { name: "uint64", bits: 64 },
  [DT.COMPLEX64]: { name: "complex64", bits: 64 },
  [DT.COMPLEX128]: { name: "complex128", bits: 128 },
  [DT.BFLOAT16]: { name: "bfloat16", bits: 16 },
  [DT.FLOAT8E4M3FN]: { name: "float8e4m3fn", bits: 8 },
  [DT.FLOAT8E4M3FNUZ]: { name: "float8e4m3fnuz", bits: 8 },
  [DT.FLOAT8E5M2]: { name: "float8e5m2", bits: 8 },
  [DT.FLOAT8E5M2FNUZ]: { name: "float8e5m2fnuz", bits: 8 },
  [DT.UINT4]: { name: "uint4", bits: 4 },
  [DT.INT4]: { name: "int4", bits: 4 },
  [DT.FLOAT4E2M1]: { name: "float4e2m1", bits: 4 },
  [DT.FLOAT8E8M0]: { name: "float8e8m0", bits: 8 },
  [DT.UINT2]: { name: "uint2", bits: 2 },
  [DT.INT2]: { name: "int2", bits: 2 },
  [DT.FLOAT6E2M3]: { name: "float6e2m3", bits: 6 },
  [DT.FLOAT6E3M2]: { name: "float6e3m2", bits: 6 },
};

const BY_NAME = new Map(Object.entries(INFO).map(([k, v]) => [v.name, Number(k)]));

/** The name ONNX's textual syntax uses for an element type (`float`, `int64`, ...). */
export function dtypeName(dtype: number): string {
  return INFO[dtype]?.name ?? `dtype${dtype}`;
}

export function dtypeFromName(name: string): number | undefined {
  return BY_NAME.get(name);
}

/** Bytes needed for `count` elements, rounding packed sub-byte types up. */
export function byteSize(dtype: number, count: number): number {
  const bits = INFO[dtype]?.bits ?? 0;
  return Math.ceil((bits * count) / 8);
}

export function isFloat(dtype: number): boolean {
  return [DT.FLOAT, DT.FLOAT16, DT.DOUBLE, DT.BFLOAT16].includes(dtype);
}
