// The sparse passes composed with kv-append-only, as a .pipe compiles them: the rewrite, then the
// append-only contract (split attention in the dense layers, present_new.* outputs).
import * as ort from "onnxruntime-node";
import { expect } from "vitest";
import type { Model } from "../../graph/ir/model.ts";
import { createKvAppendOnly } from "../../passes/kv/kv-append-only.ts";
import { throughCopies } from "../../passes/kv/kv-split-attention.ts";
import { seededFeeds } from "./ort-inputs.ts";
import { modelBytes } from "./ort-parity.ts";

/** `rewrite` followed by kv-append-only; checks no layer still reads (or outputs) the concatenated cache. */
export function thenAppendOnly(rewrite: (m: Model) => number): (m: Model) => number {
  return (model) => {
    const rewritten = rewrite(model);
    createKvAppendOnly().run(model, { options: {}, note: () => {} });
    const pasts = new Set(model.graph.inputs.filter((i) => i.name.startsWith("past_key_values.")));
    // A one-input Concat is TorchScript's copy of the past (read for its length), not the cache growing.
    const cacheConcats = model.graph.nodeArray().filter((n) => n.op === "Concat" && n.inputs.length > 1 && n.inputs.some((i) => i && pasts.has(throughCopies(i))));
    expect(cacheConcats.map((n) => n.name)).toEqual([]);
    return rewritten;
  };
}

/**
 * The exactness cases kv-append-only takes: it refuses GroupQueryAttention (the zoo's llama "ms"
 * encoding grows its cache inside the op) and gpt2-torchscript (which never reads position_ids).
 */
export const APPEND_ONLY_CASES = /^(?!zoo llama ms$|reference gpt2-torchscript$)/;

/**
 * Largest logit difference between one decode step after `past` rows fed exactly, and the same
 * step fed as an append-only cache does: a buffer of `past + spare` rows whose spare rows (random
 * contents) the attention mask hides. A selection must neither pick nor count the spare rows.
 */
export async function spareRowsDiff(model: Model, past: number, spare: number): Promise<number> {
  const session = await ort.InferenceSession.create(modelBytes(model));
  try {
    const exact = seededFeeds(session, 11, { batch_size: 1, past_sequence_length: past, sequence_length: 1, total_sequence_length: past + 1 });
    exact["position_ids"] = new ort.Tensor("int64", BigInt64Array.from([BigInt(past)]), [1, 1]);
    const buffered: Record<string, ort.Tensor> = { ...exact };
    const mask = new BigInt64Array(past + spare + 1).fill(1n);
    mask.fill(0n, past, past + spare);
    buffered["attention_mask"] = new ort.Tensor("int64", mask, [1, mask.length]);
    for (const [name, t] of Object.entries(exact)) {
      if (!name.startsWith("past_key_values.")) continue;
      const [B, H, P, D] = t.dims as number[];
      const data = new Float32Array(B! * H! * (P! + spare) * D!).map(() => Math.random() * 4 - 2);
      for (let o = 0; o < B! * H!; o++) data.set((t.data as Float32Array).subarray(o * P! * D!, (o + 1) * P! * D!), o * (P! + spare) * D!);
      buffered[name] = new ort.Tensor("float32", data, [B!, H!, P! + spare, D!]);
    }
    const a = (await session.run(exact)).logits!.data as Float32Array;
    const b = (await session.run(buffered)).logits!.data as Float32Array;
    return Math.max(...a.map((x, i) => Math.abs(x - b[i]!)));
  } finally {
    await session.release();
  }
}
