// Parity of a sparse-attention rewrite against the unrewritten model in onnxruntime: one step
// of `seq` new tokens after a seeded past of `past` rows (seq > 1: a prefill, seq = 1: decode).
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import * as ort from "onnxruntime-node";
import type { Model } from "../../graph/ir/model.ts";
import { importLlama2c } from "../../graph/importers/llama2c.ts";
import { loadModel } from "../../graph/onnx/index.ts";
import { buildZooModel, ENCODINGS, gpt2Config, llamaConfig } from "../../graph/zoo/index.ts";
import { lowerAttention } from "../../passes/attention/lower.ts";
import { liftAttention } from "../../passes/attention/lift.ts";
import { halfToFloat } from "../../runtime/tensors.ts";
import { modelBytes } from "./ort-parity.ts";
import { HAVE_SHARED, SHARED_FIXTURES, sharedOnnxFiles } from "./fixtures.ts";
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

export interface ExactnessCase {
  name: string;
  load(): Model | Promise<Model>;
}

/** Zoo models in every encoding (6 layers, so layer-role passes have sparse layers) and the reference exports. */
export function projectExactnessCases(): ExactnessCase[] {
  const zoo = ENCODINGS.flatMap((encoding) =>
    [llamaConfig({ layers: 6 }), gpt2Config({ layers: 6 })].map((config) => ({ name: `zoo ${config.family} ${encoding}`, load: () => buildZooModel(config, { encoding }) })),
  );
  const reference = REFERENCE_EXPORTS.map((dir) => ({ name: `reference ${dir}`, load: () => loadModel(resolve(REFERENCE_DIR, dir, "model.onnx")) }));
  return [...zoo, ...reference];
}

/** The shared fixture decoders and stories260K imported in every encoding (empty when ../shared is absent). */
export function sharedExactnessCases(): ExactnessCase[] {
  const onnx = sharedOnnxFiles().map((file) => ({ name: `shared ${file}`, load: () => loadModel(resolve(SHARED_FIXTURES, file)) }));
  const stories = resolve(SHARED_FIXTURES, "stories260K/stories260K.bin");
  const imported = { name: "shared stories260K", load: () => loadModel(importLlama2c(stories, mkdtempSync(join(tmpdir(), "pipec-stories-"))).modelPath) };
  return HAVE_SHARED ? [...onnx, imported] : [];
}

const REFERENCE_DIR = resolve(import.meta.dirname, "../fixtures/reference");
const REFERENCE_EXPORTS = ["gpt2-dynamo", "gpt2-torchscript", "llama-dynamo", "llama-torchscript", "qwen2-dynamo", "qwen2-torchscript"];

/**
 * Runs a prefill (5 tokens) and a decode step (after 20 past rows) through lift + lower alone and
 * through lift + `rewrite` + lower; returns how many blocks were lifted and rewritten and the
 * largest output difference. The dense side is lowered too so the difference is the rewrite's
 * alone: lowering computes fused and float16 attention in float32 (lift-attention's tests hold
 * lift + lower to the original).
 */
export async function exactness(c: ExactnessCase, rewrite: (m: Model) => number): Promise<{ lifted: number; rewritten: number; diff: number }> {
  const dense = await c.load();
  sparsify(dense, () => 0);
  const sparse = await c.load();
  const counts = sparsify(sparse, rewrite);
  let diff = 0;
  for (const step of [{ past: 0, seq: 5 }, { past: 20, seq: 1 }]) diff = Math.max(diff, maxOutputDiff(await runStep(dense, step), await runStep(sparse, step)));
  return { ...counts, diff };
}

/** A past tensor [B, Hkv, P, D] with only the rows `kept` along P (what a cache that evicted the rest holds). */
export function keepRows(t: ort.Tensor, kept: readonly number[]): ort.Tensor {
  const [B, H, P, D] = t.dims as number[];
  const src = t.data as Float32Array;
  const out = new Float32Array(B! * H! * kept.length * D!);
  for (let o = 0; o < B! * H!; o++) kept.forEach((r, j) => out.set(src.subarray((o * P! + r) * D!, (o * P! + r + 1) * D!), (o * kept.length + j) * D!));
  return new ort.Tensor("float32", out, [B!, H!, kept.length, D!]);
}
