// The KV cache as the generation loop sees it: per layer (one slot per past input), a
// length in rows, append by running the model, truncate (rollback after speculative
// verification), gather (KV selection, tree verification) and its size in bytes.
// Each slot is viewed as [outer, rows, inner]: outer = the axes before P (B·Hkv, or 2·B·H
// for the stacked GPT-2 layout), inner = the axes after it (D).
import type * as ort from "onnxruntime-node";
import type { KvSlot } from "../contract.ts";
import { halfToFloat, type FloatArray, type IntArray } from "../tensors.ts";

export interface KvCache {
  /** Rows (tokens) held. */
  readonly length: number;
  /** Bytes the cache holds now / at most since it was created. */
  readonly bytes: number;
  readonly peakBytes: number;
  /** Before a step of S rows: past tensors into `feeds`; outputs into `fetches` (preallocated ones when `bind`). */
  prepare(S: number, feeds: Record<string, ort.Tensor>, fetches: Record<string, ort.Tensor | null>, bind: boolean): void;
  /** The attention mask values (1 = attend) for a step of S rows: a view, valid until the next call. */
  mask(S: number): IntArray;
  /** After a step of S rows: take the model's outputs into the cache. */
  accept(outputs: Record<string, ort.Tensor>, S: number): void;
  /** Keep the first `length` rows. */
  truncate(length: number): void;
  /** Room for `rows` rows without growing: a hint from a caller that knows the run's length (the present cache holds no spare room and ignores it). */
  reserve(rows: number): void;
  /** Keep rows `indices` (each < length), in that order. */
  gather(indices: readonly number[]): void;
  /** A copy of row `index` of slot `slot` ([outer, inner] flattened), for inspection. */
  row(slot: number, index: number): Float32Array;
}

export interface SlotGeometry {
  outer: number;
  inner: number;
}

export function geometry(slot: KvSlot): SlotGeometry {
  const before = slot.dims.slice(0, slot.seqAxis).reduce((a, b) => a * b, 1);
  const after = slot.dims.slice(slot.seqAxis + 1).reduce((a, b) => a * b, 1);
  return { outer: before, inner: after };
}

export function dimsWithRows(slot: KvSlot, rows: number): number[] {
  const dims = slot.dims.slice();
  dims[slot.seqAxis] = rows;
  return dims;
}

export function checkIndices(indices: readonly number[], length: number): void {
  for (const i of indices) {
    if (!Number.isInteger(i) || i < 0 || i >= length) throw new RangeError(`gather index ${i} is outside the cache (length ${length})`);
  }
}

/** dst[o, dstRow + r, :] = src[o, srcRow + r, :] for r < count and every outer o. */
export function copyRowRange(
  g: SlotGeometry,
  src: FloatArray, srcRows: number, srcRow: number,
  dst: FloatArray, dstRows: number, dstRow: number,
  count: number,
): void {
  const { outer, inner } = g;
  for (let o = 0; o < outer; o++) {
    const from = (o * srcRows + srcRow) * inner;
    dst.set(src.subarray(from, from + count * inner), (o * dstRows + dstRow) * inner);
  }
}

/** dst[o, j, :] = src[o, indices[j], :]: the selected rows, packed from row 0. */
export function gatherRows(g: SlotGeometry, src: FloatArray, srcRows: number, dst: FloatArray, dstRows: number, indices: readonly number[]): void {
  indices.forEach((index, j) => copyRowRange(g, src, srcRows, index, dst, dstRows, j, 1));
}

export function readRow(g: SlotGeometry, src: FloatArray, srcRows: number, index: number): Float32Array {
  const size = g.outer * g.inner;
  const row = src instanceof Float32Array ? new Float32Array(size) : new Uint16Array(size);
  copyRowRange(g, src, srcRows, index, row, 1, 0, 1);
  return row instanceof Float32Array ? row : Float32Array.from(row, halfToFloat);
}
