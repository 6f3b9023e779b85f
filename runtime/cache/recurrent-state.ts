// State inputs that are not attention KV (e.g. LFM2's convolution state past_conv.{i}):
// opaque to the runtime, fed back from their present_* output each step, zeros at start.
// Such state has no rows to cut, so it rolls back only by restoring a snapshot: the state
// before the latest call is kept (references only: every call returns fresh tensors), so a
// sequence can undo its last call, and `snapshot`/`restore` keep any earlier point.
import * as ort from "onnxruntime-node";
import type { StateSlot } from "../contract.ts";
import { allocFloat, floatData } from "../tensors.ts";

/** The state tensors at one point; valid for as long as it is held (nothing writes into them). */
export type RecurrentSnapshot = readonly ort.Tensor[];

export class RecurrentState {
  private tensors: ort.Tensor[];
  /** The state before the latest call (undefined once restored, or before any call). */
  private beforeLast?: RecurrentSnapshot;

  constructor(private readonly slots: readonly StateSlot[]) {
    this.tensors = slots.map((slot) => new ort.Tensor(slot.type, allocFloat(slot.type, slot.dims.reduce((a, b) => a * b, 1)), slot.dims));
  }

  get isEmpty(): boolean {
    return this.slots.length === 0;
  }

  get bytes(): number {
    return this.tensors.reduce((sum, t) => sum + floatData(t).byteLength, 0);
  }

  prepare(feeds: Record<string, ort.Tensor>, fetches: Record<string, ort.Tensor | null>): void {
    this.slots.forEach((slot, i) => {
      feeds[slot.input] = this.tensors[i];
      fetches[slot.output] = null;
    });
  }

  accept(outputs: Record<string, ort.Tensor>): void {
    const next = this.slots.map((slot) => {
      const tensor = outputs[slot.output];
      if (!tensor) throw new Error(`model returned no ${slot.output}`);
      return tensor;
    });
    this.beforeLast = this.tensors;
    this.tensors = next;
  }

  snapshot(): RecurrentSnapshot {
    return this.tensors.slice();
  }

  restore(snapshot: RecurrentSnapshot): void {
    this.tensors = snapshot.slice();
    this.beforeLast = undefined;
  }

  /** Undoes the latest call; false when there is none to undo (already undone, or no call yet). */
  undoLast(): boolean {
    if (!this.beforeLast) return false;
    this.restore(this.beforeLast);
    return true;
  }
}
