// What the sparse layers of a compiled model attended: each reports, per step, how many keys its
// last query attended (graph outputs attended_keys.<method>.<layer>, added by the sparse passes).
// The runtime only counts them, so a budget in the stats is what the graph did, not its options.
import type * as ort from "onnxruntime-node";

/** One sparse layer's report output. */
export interface AttendedKeysSlot {
  method: string;
  layer: number;
  output: string;
}

/** Keys a method's layers attended per one-query step, over every such step and layer. */
export interface AttendedKeysStats {
  layers: number;
  /** One-query steps counted (the prompt and verification steps attend densely by design). */
  steps: number;
  mean: number;
  min: number;
  max: number;
}

export class AttendedKeys {
  private readonly byMethod = new Map<string, { layers: Set<number>; steps: number; sum: number; count: number; min: number; max: number }>();

  constructor(private readonly slots: readonly AttendedKeysSlot[]) {}

  /** Asks for the reports (they are a few int64 scalars). */
  prepare(fetches: Record<string, ort.Tensor | null>): void {
    for (const s of this.slots) fetches[s.output] = null;
  }

  accept(outputs: Record<string, ort.Tensor>, queries: number): void {
    if (queries !== 1 || this.slots.length === 0) return;
    const stepped = new Set<string>();
    for (const s of this.slots) {
      const n = Number((outputs[s.output]!.data as BigInt64Array)[0]);
      let m = this.byMethod.get(s.method);
      if (!m) this.byMethod.set(s.method, (m = { layers: new Set(), steps: 0, sum: 0, count: 0, min: Infinity, max: 0 }));
      m.layers.add(s.layer);
      if (!stepped.has(s.method)) (m.steps++, stepped.add(s.method));
      m.sum += n;
      m.count++;
      m.min = Math.min(m.min, n);
      m.max = Math.max(m.max, n);
    }
  }

  /** Per method; undefined when the model reports nothing or no one-query step ran. */
  stats(): Record<string, AttendedKeysStats> | undefined {
    if (this.byMethod.size === 0) return undefined;
    return Object.fromEntries([...this.byMethod].map(([method, m]) => [method, { layers: m.layers.size, steps: m.steps, mean: m.sum / m.count, min: m.min, max: m.max }]));
  }
}
