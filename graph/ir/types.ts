import type { TypeProto } from "../onnx/generated/onnx_pb.ts";

/** A dimension: a known size, a symbolic name (`B`, `past_sequence_length`), or unknown. */
export type Dim = number | string | undefined;

export interface TensorType {
  kind: "tensor";
  dtype: number;
  /** Undefined when even the rank is unknown. */
  shape: Dim[] | undefined;
}

/** Sequence, map, optional and sparse types are carried as their proto; passes treat them as opaque. */
export interface OpaqueType {
  kind: "opaque";
  proto: TypeProto;
}

export type ValueType = TensorType | OpaqueType;

export function tensorType(dtype: number, shape?: Dim[]): TensorType {
  return { kind: "tensor", dtype, shape };
}

export function sameType(a: ValueType | undefined, b: ValueType | undefined): boolean {
  if (a === b) return true;
  if (!a || !b || a.kind !== "tensor" || b.kind !== "tensor") return false;
  if (a.dtype !== b.dtype) return false;
  if (!a.shape || !b.shape) return a.shape === b.shape;
  return a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape![i]);
}
