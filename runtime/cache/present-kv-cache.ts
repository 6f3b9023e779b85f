// Cache for models that return the whole cache (present = Concat(past, new) inside the
// graph). The graph's Concat already copies the past once per step; the runtime adds no
// copy on top: the `present` tensors onnxruntime returns become the next step's `past`
// feeds as they are. Only truncate and gather copy, and only when asked.
import * as ort from "onnxruntime-node";
import type { KvSlot } from "../contract.ts";
import { allocFloat, allocInt, fillInt, floatData, type FloatArray, type IntArray, type IntType } from "../tensors.ts";
import { checkIndices, copyRowRange, dimsWithRows, gatherRows, geometry, KvLayout, readRow, type KvCache, type KvLayer, type PerHeadIndices, type SlotGeometry } from "./kv-cache.ts";

export class PresentKvCache implements KvCache {
  private tensors: ort.Tensor[];
  private readonly layout: KvLayout;
  private ones: IntArray;
  private rows = 0;
  private peak = 0;

  constructor(
    private readonly slots: readonly KvSlot[],
    private readonly maskType: IntType,
  ) {
    this.tensors = slots.map((slot) => new ort.Tensor(slot.type, allocFloat(slot.type, 0), dimsWithRows(slot, 0)));
    this.ones = allocInt(maskType, 0);
    this.layout = new KvLayout(slots);
  }

  get length(): number {
    return this.rows;
  }

  get layers(): readonly KvLayer[] {
    return this.layout.layers;
  }

  get bytes(): number {
    return this.tensors.reduce((sum, t) => sum + floatData(t).byteLength, 0);
  }

  get peakBytes(): number {
    return this.peak;
  }

  prepare(_S: number, feeds: Record<string, ort.Tensor>, fetches: Record<string, ort.Tensor | null>, _bind: boolean): void {
    this.slots.forEach((slot, i) => {
      feeds[slot.input] = this.tensors[i];
      fetches[slot.output] = null; // its size grows every step: let onnxruntime allocate it
    });
  }

  mask(S: number): IntArray {
    const needed = this.rows + S;
    if (this.ones.length < needed) {
      // Doubling keeps mask growth amortised O(1) per step instead of a fresh P-sized array each step.
      this.ones = allocInt(this.maskType, Math.max(needed, 2 * this.ones.length));
      fillInt(this.ones, 1);
    }
    return this.ones.subarray(0, needed);
  }

  accept(outputs: Record<string, ort.Tensor>, S: number): void {
    const rows = this.rows + S;
    this.slots.forEach((slot, i) => {
      const present = outputs[slot.output];
      if (!present || present.dims[slot.seqAxis] !== rows) {
        throw new Error(`${slot.output}: expected ${rows} rows on axis ${slot.seqAxis}, got dims [${present?.dims.join(", ")}]`);
      }
      this.tensors[i] = present;
    });
    this.rows = rows;
    this.peak = Math.max(this.peak, this.bytes);
  }

  reserve(): void {}

  truncate(length: number): void {
    if (length > this.rows || length < 0) throw new RangeError(`cannot truncate a cache of ${this.rows} rows to ${length}`);
    if (length === this.rows) return;
    this.rebuild(length, (_slot, g, src, dst) => copyRowRange(g, src, this.rows, 0, dst, length, 0, length));
  }

  gather(indices: readonly number[]): void {
    checkIndices(indices, this.rows);
    this.rebuild(indices.length, (_slot, g, src, dst) => gatherRows(g, src, this.rows, dst, indices.length, () => indices));
  }

  gatherPerHead(indices: PerHeadIndices): void {
    const k = this.layout.check(indices, this.rows);
    this.rebuild(k, (slot, g, src, dst) => gatherRows(g, src, this.rows, dst, k, this.layout.rowsOf(indices, slot)));
  }

  row(slot: number, index: number): Float32Array {
    checkIndices([index], this.rows);
    return readRow(geometry(this.slots[slot]), floatData(this.tensors[slot]), this.rows, index);
  }

  private rebuild(rows: number, fill: (slot: number, g: SlotGeometry, src: FloatArray, dst: FloatArray) => void): void {
    this.slots.forEach((slot, i) => {
      const g = geometry(slot);
      const dst = allocFloat(slot.type, g.outer * rows * g.inner);
      fill(i, g, floatData(this.tensors[i]), dst);
      this.tensors[i] = new ort.Tensor(slot.type, dst, dimsWithRows(slot, rows));
    });
    this.rows = rows;
  }
}
