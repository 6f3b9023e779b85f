// Typed-array plumbing shared by the cache, the decoder step and the samplers.
import * as ort from "onnxruntime-node";
import { RuntimeError } from "./errors.ts";

export type IntType = "int32" | "int64";
export type FloatType = "float32" | "float16";
export type IntArray = Int32Array | BigInt64Array;
/** float16 travels as its raw bits in a Uint16Array, as onnxruntime-node expects. */
export type FloatArray = Float32Array | Uint16Array;

export function allocInt(type: IntType, length: number): IntArray {
  return type === "int64" ? new BigInt64Array(length) : new Int32Array(length);
}

export function setInt(array: IntArray, index: number, value: number): void {
  if (array instanceof BigInt64Array) array[index] = BigInt(value);
  else array[index] = value;
}

/** An int tensor of `values` (ids, positions) in the type the model takes. */
export function intTensor(type: IntType, values: readonly number[], dims: number[]): ort.Tensor {
  const data = allocInt(type, values.length);
  values.forEach((v, i) => setInt(data, i, v));
  return new ort.Tensor(type, data, dims);
}

export function fillInt(array: IntArray, value: number, start = 0, end = array.length): void {
  if (array instanceof BigInt64Array) array.fill(BigInt(value), start, end);
  else array.fill(value, start, end);
}

export function allocFloat(type: FloatType, length: number): FloatArray {
  return type === "float16" ? new Uint16Array(length) : new Float32Array(length);
}

export function asIntType(name: string, type: string): IntType {
  if (type === "int32" || type === "int64") return type;
  throw new RuntimeError("unsupported-input-type", `model input ${name} has type ${type}; the runtime feeds ids, masks and positions as int32 or int64`);
}

export function asFloatType(name: string, type: string): FloatType {
  if (type === "float32" || type === "float16") return type;
  throw new RuntimeError("unsupported-cache-type", `model tensor ${name} has type ${type}; the runtime carries state as float32 or float16`);
}

export function floatData(tensor: ort.Tensor): FloatArray {
  const data = tensor.data;
  if (data instanceof Float32Array || data instanceof Uint16Array) return data;
  throw new RuntimeError("unsupported-cache-type", `expected a float32 or float16 tensor, got ${tensor.type}`);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half -> float (exact). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  u32[0] = ((h & 0x8000) << 16) | ((exponent + 112) << 23) | (mantissa << 13);
  return f32[0];
}

/** Copies `length` values from `source[offset..]` into `target` as float32 (the samplers work in float32). */
export function readFloatRow(source: FloatArray, offset: number, target: Float32Array): void {
  const length = target.length;
  if (source instanceof Float32Array) {
    target.set(source.subarray(offset, offset + length));
    return;
  }
  for (let i = 0; i < length; i++) target[i] = halfToFloat(source[offset + i]);
}
