import { resolve } from "node:path";
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import type { Model } from "../../graph/ir/model.ts";
import { loadModel } from "../../graph/onnx/index.ts";
import { buildZooModel, gpt2Config, llamaConfig } from "../../graph/zoo/index.ts";
import { modelBytes } from "../../test/helpers/ort-parity.ts";
import { seededFeeds } from "../../test/helpers/ort-inputs.ts";
import { exactness, keepRows, projectExactnessCases, sparsify, type ExactnessCase } from "../../test/helpers/sparse-parity.ts";
import { slidingWindow } from "./sliding-window.ts";

const ROOT = resolve(import.meta.dirname, "../..");
/** Float32 rounding, relative to the logits' size: summing a row of fewer (unmasked) keys rounds differently. */
const EXACT = 1e-5;

describe("sliding-window with a window covering the context is exact", () => {
  for (const c of projectExactnessCases()) {
    it(c.name, async () => {
      const r = await exactness(c, (m) => slidingWindow(m, { size: 1 << 20 }));
      expect(r.lifted).toBeGreaterThan(0);
      expect(r.rewritten).toBe(r.lifted);
      expect(r.diff).toBeLessThanOrEqual(EXACT);
    });
  }
});

// The reference does not read the rewritten graph: the UNREWRITTEN model decodes the tokens one
// at a time, its past cut to the last size - 1 rows before each step, each token at its own
// position id. That is sliding-window attention in every layer (each row's keys and values were
// computed by a step that saw only its own window, and a rotary key keeps the rotation of its
// position), so no mask the model takes needs to express a band; and running the original model
// on only the last `size` tokens would not do, since from the second layer on their rows would
// have seen fewer than their own windows.
describe("sliding-window attends each query to its last `size` keys", () => {
  const size = 4;
  const tokens = [3, 17, 5, 9, 22, 1, 30, 8, 14, 2, 11, 26];
  const cases: ExactnessCase[] = [
    { name: "zoo llama decomposed", load: () => buildZooModel(llamaConfig({ layers: 3 }), { encoding: "decomposed" }) },
    { name: "zoo llama standard", load: () => buildZooModel(llamaConfig({ layers: 3 }), { encoding: "standard" }) },
    { name: "zoo gpt2 decomposed", load: () => buildZooModel(gpt2Config({ layers: 3 }), { encoding: "decomposed" }) },
    ...["llama-dynamo", "qwen2-torchscript"].map((dir) => ({ name: `reference ${dir}`, load: () => loadModel(resolve(ROOT, "test/fixtures/reference", dir, "model.onnx")) })),
    { name: "sotu-tiny", load: () => loadModel(resolve(ROOT, "examples/models/sotu-tiny/model.onnx")) },
  ];
  for (const c of cases) {
    it(`${c.name}: a prefill, and decode steps with and without eviction, equal the windowed reference`, async () => {
      const dense = await c.load();
      sparsify(dense, () => 0);
      const windowed = await c.load();
      const { lifted, rewritten } = sparsify(windowed, (m) => slidingWindow(m, { size }));
      expect(lifted).toBeGreaterThan(0);
      expect(rewritten).toBe(lifted);

      const reference = await decode(dense, tokens, size - 1);
      const scale = Math.max(...reference.flatMap((row) => Array.from(row, Math.abs)));
      const tolerance = EXACT * Math.max(1, scale);
      const prefill = await decode(windowed, tokens, Infinity, tokens.length);
      const full = await decode(windowed, tokens, Infinity);
      const evicted = await decode(windowed, tokens, size - 1);
      expect(maxDiff(prefill, reference)).toBeLessThanOrEqual(tolerance);
      expect(maxDiff(full, reference)).toBeLessThanOrEqual(tolerance);
      expect(maxDiff(evicted, reference)).toBeLessThanOrEqual(tolerance);
      // The window matters: the dense model's later rows differ from it by far more than rounding.
      const plain = await decode(dense, tokens, Infinity);
      expect(maxDiff(plain.slice(size), reference.slice(size))).toBeGreaterThan(100 * tolerance);
    });
  }
});

/**
 * Each token's logits, the tokens run in calls of `chunk` (one call per token by default), each
 * call's past cut to its last `keep` rows, every token at its own position id.
 */
async function decode(model: Model, ids: readonly number[], keep: number, chunk = 1): Promise<Float32Array[]> {
  const session = await ort.InferenceSession.create(modelBytes(model));
  try {
    const rows: Float32Array[] = [];
    let past: Record<string, ort.Tensor> = {};
    for (let start = 0; start < ids.length; start += chunk) {
      const S = Math.min(chunk, ids.length - start);
      const P = Object.values(past)[0]?.dims[2] ?? 0;
      const feeds = seededFeeds(session, 7, { batch_size: 1, past_sequence_length: 0, sequence_length: S, total_sequence_length: S });
      for (const meta of session.inputMetadata) {
        const name = meta.name;
        if (past[name]) feeds[name] = past[name]!;
        else if (/input_ids/.test(name)) feeds[name] = int64(ids.slice(start, start + S), [1, S]);
        else if (/position/.test(name)) feeds[name] = int64(Array.from({ length: S }, (_, j) => start + j), [1, S]);
        else if (/mask/.test(name)) feeds[name] = int64(Array(P + S).fill(1), [1, P + S]);
      }
      const out = await session.run(feeds);
      const logits = out["logits"]!;
      const V = logits.dims[2]!;
      for (let j = 0; j < S; j++) rows.push((logits.data as Float32Array).slice(j * V, (j + 1) * V));
      past = {};
      for (const meta of session.inputMetadata) {
        const present = out[meta.name.replace("past_key_values", "present")];
        if (!/past/.test(meta.name) || !present) continue;
        const R = present.dims[2]!;
        const kept = Array.from({ length: Math.min(R, keep) }, (_, j) => R - Math.min(R, keep) + j);
        past[meta.name] = keepRows(present, kept);
      }
    }
    return rows;
  } finally {
    await session.release();
  }
}

function int64(values: readonly number[], dims: number[]): ort.Tensor {
  return new ort.Tensor("int64", BigInt64Array.from(values, BigInt), dims);
}

function maxDiff(a: readonly Float32Array[], b: readonly Float32Array[]): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  a.forEach((row, i) => row.forEach((x, j) => (worst = Math.max(worst, Math.abs(x - b[i]![j]!)))));
  return worst;
}
