// The KV cache as the generation loop sees it: per layer (one slot per past input), a
// length in rows, append by running the model, truncate (rollback after speculative
// verification), gather (KV selection, tree verification; per KV head for eviction policies)
// and its size in bytes.
// Each slot is viewed as [outer, rows, inner]: outer = the axes before P (B·Hkv, or 2·B·H
// for the stacked GPT-2 layout, K heads then V heads), inner = the axes after it (D). With
// B = 1 the KV head of outer index o is o % Hkv in both layouts (Hkv = the axis before P).
import type * as ort from "onnxruntime-node";
import type { KvSlot } from "../contract.ts";
import { halfToFloat, type FloatArray, type IntArray } from "../tensors.ts";

/** One decoder layer's share of the cache: the layer its inputs name and its KV heads (H for the stacked layout). */
export interface KvLayer {
  layer: number;
  heads: number;
}

/**
 * Rows to keep per layer and KV head: indices[l][h] are the rows KV head h of `KvCache.layers[l]`
 * keeps, in order. Every list has the same length (one attention mask covers every layer and head).
 */
export type PerHeadIndices = readonly (readonly (readonly number[])[])[];

export interface KvCache {
  /** Rows (tokens) held. */
  readonly length: number;
  /** The layers the cache holds, in the order of `PerHeadIndices`. */
  readonly layers: readonly KvLayer[];
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
  /** Keep, in every layer and KV head, the rows `indices` names for it (each < length, in that order). */
  gatherPerHead(indices: PerHeadIndices): void;
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

/** The rows each outer index of a slot keeps (see gatherRows). */
export type RowsOf = (outer: number) => readonly number[];

/** The cache's layers, and per slot its layer (an index into them) and KV heads, which name the rows each outer index keeps on a per-head gather. */
export class KvLayout {
  readonly layers: KvLayer[] = [];
  private readonly slotLayer: number[];
  private readonly slotHeads: number[];

  constructor(slots: readonly KvSlot[]) {
    this.slotHeads = slots.map((slot) => slot.dims[slot.seqAxis - 1] ?? 1);
    this.slotLayer = slots.map((slot, i) => {
      let index = this.layers.findIndex((l) => l.layer === slot.layer);
      if (index < 0) index = this.layers.push({ layer: slot.layer, heads: this.slotHeads[i]! }) - 1;
      return index;
    });
  }

  /** Checks `indices` against the layers and a cache of `length` rows; returns the rows each head keeps. */
  check(indices: PerHeadIndices, length: number): number {
    if (indices.length !== this.layers.length) throw new RangeError(`per-head gather: indices for ${indices.length} layers, but the cache holds ${this.layers.length}`);
    const kept = indices[0]?.[0]?.length ?? 0;
    indices.forEach((heads, l) => {
      if (heads.length !== this.layers[l]!.heads) throw new RangeError(`per-head gather: layer ${this.layers[l]!.layer} has ${this.layers[l]!.heads} KV heads, got indices for ${heads.length}`);
      for (const rows of heads) {
        if (rows.length !== kept) throw new RangeError(`per-head gather: every head must keep as many rows (${kept}), one keeps ${rows.length}`);
        checkIndices(rows, length);
      }
    });
    return kept;
  }

  rowsOf(indices: PerHeadIndices, slot: number): RowsOf {
    const heads = indices[this.slotLayer[slot]!]!;
    const H = this.slotHeads[slot]!;
    return (outer) => heads[outer % H]!;
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

/** dst[o, j, :] = src[o, rowsOf(o)[j], :]: each outer index's selected rows, packed from row 0. */
export function gatherRows(g: SlotGeometry, src: FloatArray, srcRows: number, dst: FloatArray, dstRows: number, rowsOf: RowsOf): void {
  const { outer, inner } = g;
  for (let o = 0; o < outer; o++) {
    const rows = rowsOf(o);
    for (let j = 0; j < rows.length; j++) {
      const from = (o * srcRows + rows[j]!) * inner;
      dst.set(src.subarray(from, from + inner), (o * dstRows + j) * inner);
    }
  }
}

export function readRow(g: SlotGeometry, src: FloatArray, srcRows: number, index: number): Float32Array {
  const size = g.outer * g.inner;
  const row = src instanceof Float32Array ? new Float32Array(size) : new Uint16Array(size);
  copyRowRange(g, src, srcRows, index, row, 1, 0, 1);
  return row instanceof Float32Array ? row : Float32Array.from(row, halfToFloat);
}
