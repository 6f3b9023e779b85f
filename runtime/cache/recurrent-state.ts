// State inputs that are not attention KV (e.g. LFM2's convolution state past_conv.{i}):
// opaque to the runtime, fed back from their present_* output each step, zeros at start.
// Such state has no rows to cut, so a model that has it cannot roll back.
import * as ort from "onnxruntime-node";
import type { StateSlot } from "../contract.ts";
import { allocFloat, floatData } from "../tensors.ts";

export class RecurrentState {
  private tensors: ort.Tensor[];

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
    this.slots.forEach((slot, i) => {
      const next = outputs[slot.output];
      if (!next) throw new Error(`model returned no ${slot.output}`);
      this.tensors[i] = next;
    });
  }
}
