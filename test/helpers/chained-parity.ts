import * as ort from "onnxruntime-node";
import type { Model } from "../../graph/ir/model.ts";
import { maxOutputDiff, sparsify, type ExactnessCase } from "./sparse-parity.ts";
import { modelBytes } from "./ort-parity.ts";
import { seededFeeds } from "./ort-inputs.ts";

/**
 * Test support: exactness of a rewrite that changes what the KV cache holds (streaming-llm caches
 * keys before rotation), so a seeded past means different things to the two models. Each model
 * runs a `prefill`-token prompt, then `decodes` one-token steps fed its own present outputs, and
 * the steps' non-cache outputs (logits) are compared: `diff` the largest difference, `scale` the
 * largest magnitude among the dense model's (what float32 rounding differences grow with).
 */
export async function chainedExactness(c: ExactnessCase, rewrite: (m: Model) => number, prefill = 12, decodes = 3): Promise<{ lifted: number; rewritten: number; diff: number; scale: number }> {
  const dense = await c.load();
  sparsify(dense, () => 0);
  const sparse = await c.load();
  const counts = sparsify(sparse, rewrite);
  const [a, b] = [await chain(dense, prefill, decodes), await chain(sparse, prefill, decodes)];
  const diff = Math.max(...a.map((step, i) => maxOutputDiff(withoutCache(step), withoutCache(b[i]!))));
  const scale = Math.max(...a.flatMap((step) => Object.values(withoutCache(step)).map(largestMagnitude)));
  return { ...counts, diff, scale };
}

async function chain(model: Model, prefill: number, decodes: number): Promise<Record<string, ort.Tensor>[]> {
  const session = await ort.InferenceSession.create(modelBytes(model));
  try {
    const dims = { batch_size: 1, past_sequence_length: 0, past_seq_len: 0, sequence_length: prefill, seq_len: prefill, total_sequence_length: prefill, total_seq_len: prefill };
    let fed = stepFeeds(session, seededFeeds(session, 7, dims), 0, prefill);
    const steps = [await session.run(fed)];
    for (let i = 0; i < decodes; i++) {
      const past = prefill + i;
      const feeds = stepFeeds(session, seededFeeds(session, 11 + i, { ...dims, sequence_length: 1, seq_len: 1 }), past, 1);
      for (const name of Object.keys(feeds)) if (/past/.test(name)) feeds[name] = nextPast(fed[name]!, steps[i]!, name);
      fed = feeds;
      steps.push(await session.run(feeds));
    }
    return steps;
  } finally {
    await session.release();
  }
}

/** `seeded` with positions past.. past+S-1 and a mask of ones over past + S keys. */
function stepFeeds(session: ort.InferenceSession, seeded: Record<string, ort.Tensor>, past: number, S: number): Record<string, ort.Tensor> {
  const feeds = { ...seeded };
  const int = (name: string, values: number[], dims: number[]) =>
    (feeds[name] = seeded[name]!.type === "int32" ? new ort.Tensor("int32", Int32Array.from(values), dims) : new ort.Tensor("int64", BigInt64Array.from(values, BigInt), dims));
  for (const meta of session.inputMetadata) {
    if (/position/.test(meta.name)) int(meta.name, Array.from({ length: S }, (_, i) => past + i), [1, S]);
    else if (/mask/.test(meta.name)) int(meta.name, Array(past + S).fill(1), [1, past + S]);
  }
  return feeds;
}

/** The past for the next step: the whole-cache present output, or (append-only, present_new.*) the fed past with the new rows after it. */
function nextPast(past: ort.Tensor, outputs: Record<string, ort.Tensor>, name: string): ort.Tensor {
  const present = outputs[presentName(name)];
  if (present) return present;
  const rows = outputs[name.replace("past_key_values", "present_new")];
  if (!rows) throw new Error(`no present or present_new output for ${name}`);
  const [B, H, P, D] = past.dims as number[];
  const S = rows.dims[2]!;
  const data = new Float32Array(B! * H! * (P! + S) * D!);
  for (let o = 0; o < B! * H!; o++) {
    data.set((past.data as Float32Array).subarray(o * P! * D!, (o + 1) * P! * D!), o * (P! + S) * D!);
    data.set((rows.data as Float32Array).subarray(o * S * D!, (o + 1) * S * D!), (o * (P! + S) + P!) * D!);
  }
  return new ort.Tensor("float32", data, [B!, H!, P! + S, D!]);
}

function presentName(past: string): string {
  return past.replace("past_key_values", "present").replace(/^past/, "present");
}

function withoutCache(outputs: Record<string, ort.Tensor>): Record<string, ort.Tensor> {
  return Object.fromEntries(Object.entries(outputs).filter(([name]) => !/present/.test(name)));
}

function largestMagnitude(t: ort.Tensor): number {
  if (t.type !== "float32") return 0;
  let worst = 0;
  for (const x of t.data as Float32Array) worst = Math.max(worst, Math.abs(x));
  return worst;
}
