// Cache for append-only models (outputs present_new.{i}.key|value hold only the S new
// rows). The runtime owns one buffer per slot with room for C rows, feeds the whole
// buffer as past, and masks rows [length, C) out. Per step it copies S new rows per slot
// (optionally through preallocated, bound output tensors at S = 1): nothing proportional to the context
// is copied or allocated. Truncate only moves the length; the buffer doubles when full (the
// generator reserves the run's length up front). An empty cache feeds a zero-row past, so a
// prompt attends over its own S rows rather than S + C.
import * as ort from "onnxruntime-node";
import type { KvSlot } from "../contract.ts";
import { allocFloat, allocInt, fillInt, floatData, type FloatArray, type IntArray, type IntType } from "../tensors.ts";
import { checkIndices, copyRowRange, dimsWithRows, gatherRows, geometry, KvLayout, readRow, type KvCache, type KvLayer, type PerHeadIndices, type RowsOf, type SlotGeometry } from "./kv-cache.ts";

export class AppendKvCache implements KvCache {
  private readonly geometries: SlotGeometry[];
  private readonly layout: KvLayout;
  private buffers: FloatArray[] = [];
  private pasts: ort.Tensor[] = [];
  /** Zero-row pasts: an empty cache (the prompt's first chunk) attends over its own rows only, not the whole buffer. */
  private readonly emptyPasts: ort.Tensor[];
  /** Bound outputs for single-row steps, reused every decode step (made on first use). */
  private singleRow?: ort.Tensor[];
  /** Invariant: [0, rows) = 1, [rows, capacity) = 0, [capacity, end) = 1 (the new rows' slots). */
  private maskValues: IntArray;
  private capacity = 0;
  private rows = 0;
  /** Bytes of the largest buffer that held rows (one an empty cache replaced on reserve never did). */
  private peak = 0;

  constructor(
    private readonly slots: readonly KvSlot[],
    private readonly maskType: IntType,
    initialCapacity: number,
  ) {
    this.geometries = slots.map(geometry);
    this.layout = new KvLayout(slots);
    this.emptyPasts = slots.map((slot) => new ort.Tensor(slot.type, allocFloat(slot.type, 0), dimsWithRows(slot, 0)));
    this.maskValues = allocInt(maskType, 0);
    this.resize(initialCapacity, 1);
  }

  get length(): number {
    return this.rows;
  }

  get layers(): readonly KvLayer[] {
    return this.layout.layers;
  }

  get bytes(): number {
    return this.buffers.reduce((sum, b) => sum + b.byteLength, 0);
  }

  get peakBytes(): number {
    return this.peak;
  }

  prepare(S: number, feeds: Record<string, ort.Tensor>, fetches: Record<string, ort.Tensor | null>, bind: boolean): void {
    if (this.rows + S > this.capacity) this.resize(Math.max(2 * this.capacity, this.rows + S), S);
    if (bind && S === 1) {
      this.singleRow ??= this.slots.map((slot, i) => new ort.Tensor(slot.type, allocFloat(slot.type, this.geometries[i].outer * this.geometries[i].inner), dimsWithRows(slot, 1)));
    }
    this.slots.forEach((slot, i) => {
      feeds[slot.input] = this.rows === 0 ? this.emptyPasts[i] : this.pasts[i];
      fetches[slot.output] = bind && S === 1 ? this.singleRow![i] : null;
    });
  }

  mask(S: number): IntArray {
    if (this.maskValues.length < this.capacity + S) this.resize(this.capacity, S);
    return this.rows === 0 ? this.maskValues.subarray(this.capacity, this.capacity + S) : this.maskValues.subarray(0, this.capacity + S);
  }

  accept(outputs: Record<string, ort.Tensor>, S: number): void {
    this.slots.forEach((slot, i) => {
      const rows = outputs[slot.output];
      if (!rows || rows.dims[slot.seqAxis] !== S) throw new Error(`${slot.output}: expected ${S} new rows, got dims [${rows?.dims.join(", ")}]`);
      copyRowRange(this.geometries[i], floatData(rows), S, 0, this.buffers[i], this.capacity, this.rows, S);
    });
    fillInt(this.maskValues, 1, this.rows, this.rows + S);
    this.rows += S;
    this.peak = Math.max(this.peak, this.bytes);
  }

  // Every masked row of the buffer still costs attention each step, so a buffer sized to the
  // run (prompt + max tokens) beats doubling: at 1K tokens doubling attends over up to 2K rows.
  // An empty cache takes the size exactly, smaller too (a StreamingLLM run holds sinks + window + 1 rows).
  reserve(rows: number): void {
    if (rows > this.capacity || (this.rows === 0 && rows > 0)) this.resize(rows, 1);
  }

  truncate(length: number): void {
    if (length > this.rows || length < 0) throw new RangeError(`cannot truncate a cache of ${this.rows} rows to ${length}`);
    fillInt(this.maskValues, 0, length, this.rows);
    this.rows = length;
  }

  gather(indices: readonly number[]): void {
    checkIndices(indices, this.rows);
    this.select(indices.length, () => () => indices);
  }

  gatherPerHead(indices: PerHeadIndices): void {
    const k = this.layout.check(indices, this.rows);
    this.select(k, (slot) => this.layout.rowsOf(indices, slot));
  }

  /** Keeps `k` rows per outer index, packed to the front of each buffer. */
  private select(k: number, rowsOf: (slot: number) => RowsOf): void {
    this.slots.forEach((slot, i) => {
      const g = this.geometries[i];
      const selected = allocFloat(slot.type, g.outer * k * g.inner);
      gatherRows(g, this.buffers[i], this.capacity, selected, k, rowsOf(i));
      copyRowRange(g, selected, k, 0, this.buffers[i], this.capacity, 0, k);
    });
    fillInt(this.maskValues, 0, k, this.rows);
    this.rows = k;
  }

  row(slot: number, index: number): Float32Array {
    checkIndices([index], this.rows);
    return readRow(this.geometries[slot], this.buffers[slot], this.capacity, index);
  }

  /** New buffers of `capacity` rows holding the current rows, and a mask with room for `S` new rows. */
  private resize(capacity: number, S: number): void {
    if (capacity !== this.capacity) {
      this.slots.forEach((slot, i) => {
        const g = this.geometries[i];
        const buffer = allocFloat(slot.type, g.outer * capacity * g.inner);
        if (this.rows > 0) copyRowRange(g, this.buffers[i], this.capacity, 0, buffer, capacity, 0, this.rows);
        this.buffers[i] = buffer;
        this.pasts[i] = new ort.Tensor(slot.type, buffer, dimsWithRows(slot, capacity));
      });
      this.capacity = capacity;
    }
    this.maskValues = allocInt(this.maskType, capacity + Math.max(S, this.maskValues.length - capacity, 1));
    fillInt(this.maskValues, 1, 0, this.rows);
    fillInt(this.maskValues, 1, capacity);
  }
}
