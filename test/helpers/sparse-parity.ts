// Parity of a sparse-attention rewrite against the unrewritten model in onnxruntime: one step
// of `seq` new tokens after a seeded past of `past` rows (seq > 1: a prefill, seq = 1: decode).
import * as ort from "onnxruntime-node";
import type { Model } from "../../compiler/ir/model.ts";
import { lowerAttention } from "../../passes/attention/lower.ts";
import { liftAttention } from "../../passes/attention/lift.ts";
import { halfToFloat } from "../../runtime/tensors.ts";
import { modelBytes } from "./ort-parity.ts";
import { seededFeeds } from "./ort-inputs.ts";

export interface Step {
  past: number;
  seq: number;
}

/** Every exporter's names for the batch, past, new and total lengths. */
function stepDims({ past, seq }: Step): Record<string, number> {
  const total = past + seq;
  return {
    batch_size: 1, past_sequence_length: past, past_seq_len: past, sequence_length: seq, seq_len: seq,
    total_sequence_length: total, total_seq_len: total,
  };
}

/** Lifts, applies `rewrite` (which returns how many nodes it changed) and lowers `model` in place. */
export function sparsify(model: Model, rewrite: (m: Model) => number): { lifted: number; rewritten: number } {
  const lifted = liftAttention(model).rewrites;
  const rewritten = rewrite(model);
  lowerAttention(model);
  return { lifted, rewritten };
}

export async function runStep(model: Model | Uint8Array, step: Step, seed = 7): Promise<Record<string, ort.Tensor>> {
  const session = await ort.InferenceSession.create(model instanceof Uint8Array ? model : modelBytes(model));
  try {
    const feeds = seededFeeds(session, seed, stepDims(step));
    // Positions continue the past (seededFeeds counts modulo 4 from 0).
    for (const name of ["position_ids"]) {
      const t = feeds[name];
      if (!t) continue;
      const values = Array.from({ length: step.seq }, (_, i) => step.past + i);
      feeds[name] = t.type === "int32" ? new ort.Tensor("int32", Int32Array.from(values), t.dims) : new ort.Tensor("int64", BigInt64Array.from(values, BigInt), t.dims);
    }
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

/** Largest |a - b| over every float output the two runs share (float16 compared as float). */
export function maxOutputDiff(a: Record<string, ort.Tensor>, b: Record<string, ort.Tensor>): number {
  let worst = 0;
  for (const [name, ta] of Object.entries(a)) {
    const tb = b[name];
    if (!tb || (ta.type !== "float32" && ta.type !== "float16")) continue;
    const xa = floats(ta);
    const xb = floats(tb);
    if (xa.length !== xb.length) return Infinity;
    for (let i = 0; i < xa.length; i++) {
      const d = Math.abs(xa[i]! - xb[i]!);
      if (!(d <= worst)) worst = Number.isNaN(d) ? Infinity : d;
    }
  }
  return worst;
}

function floats(t: ort.Tensor): Float32Array {
  if (t.type === "float32") return t.data as Float32Array;
  const half = t.data as Uint16Array;
  return Float32Array.from(half, halfToFloat);
}
