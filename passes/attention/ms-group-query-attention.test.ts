import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { DataType } from "../../graph/ir/dtype.ts";
import { tensorType } from "../../graph/ir/types.ts";
import { buildZooModel, llamaConfig } from "../../graph/zoo/index.ts";
import { rng } from "../../test/helpers/ort-inputs.ts";
import { modelBytes } from "../../test/helpers/ort-parity.ts";
import { liftAttention } from "./lift.ts";
import { lowerAttention } from "./lower.ts";

const CONFIG = llamaConfig({ layers: 2 }); // head dim 16: GroupQueryAttention rotates Q and K itself
const [B, S, HKV, D] = [2, 3, 2, 16];

/** A batch of two prompts, the second right-padded by one token: seqlens_k differs per row. */
function paddedPrefill(): Record<string, ort.Tensor> {
  const ids = (values: number[], dims: number[]) => new ort.Tensor("int64", BigInt64Array.from(values, BigInt), dims);
  const feeds: Record<string, ort.Tensor> = {
    input_ids: ids([3, 9, 4, 7, 12, 0], [B, S]),
    attention_mask: ids([1, 1, 1, 1, 1, 0], [B, S]),
    position_ids: ids([0, 1, 2, 0, 1, 2], [B, S]),
  };
  for (let l = 0; l < CONFIG.layers; l++) {
    for (const kind of ["key", "value"]) feeds[`past_key_values.${l}.${kind}`] = new ort.Tensor("float32", new Float32Array(0), [B, HKV, 0, D]);
  }
  return feeds;
}

async function run(bytes: Uint8Array): Promise<Record<string, ort.Tensor>> {
  const session = await ort.InferenceSession.create(bytes);
  try {
    return await session.run(paddedPrefill());
  } finally {
    await session.release();
  }
}

describe("lift-ms-group-query-attention", () => {
  it("rotates a right-padded prompt row at the positions onnxruntime derives from seqlens_k", async () => {
    const model = buildZooModel(CONFIG, { encoding: "ms" });
    const before = await run(modelBytes(model));
    expect(liftAttention(model).rewrites).toBe(2);
    expect(model.graph.nodeArray().filter((n) => n.op === "GroupQueryAttention")).toEqual([]);
    lowerAttention(model);
    const after = await run(modelBytes(model));
    // Compare what the padded row really computes: its first two tokens, and every cache entry they wrote.
    const vocab = CONFIG.vocabSize;
    const logits = (r: Record<string, ort.Tensor>) => r["logits"]!.data as Float32Array;
    for (const [row, tokens] of [[0, 3], [1, 2]] as const) {
      for (let t = 0; t < tokens; t++) {
        const at = (row * S + t) * vocab;
        for (let v = 0; v < vocab; v++) expect(Math.abs(logits(after)[at + v]! - logits(before)[at + v]!)).toBeLessThanOrEqual(1e-5);
      }
    }
    const present = (r: Record<string, ort.Tensor>) => r["present.1.key"]!.data as Float32Array;
    present(after).forEach((x, i) => {
      const [row, position] = [Math.floor(i / (HKV * S * D)), Math.floor(i / D) % S];
      if (row === 0 || position < 2) expect(Math.abs(x - present(before)[i]!)).toBeLessThanOrEqual(1e-5);
    });
  });

  it("writes new rows into a fixed-length past buffer where onnxruntime writes them", async () => {
    const BUFFER = 8;
    const model = buildZooModel(CONFIG, { encoding: "ms" });
    for (const input of model.graph.inputs.filter((v) => v.name.startsWith("past_key_values."))) input.type = tensorType(DataType.FLOAT, ["batch_size", HKV, BUFFER, D]);
    const steps = [bufferedStep(3, 0), bufferedStep(1, 3)];
    const runSteps = async (bytes: Uint8Array) => {
      const session = await ort.InferenceSession.create(bytes);
      const out = [];
      for (const feeds of steps) out.push(await session.run(feeds));
      await session.release();
      return out;
    };
    const before = await runSteps(modelBytes(model));
    liftAttention(model);
    expect(model.graph.nodeArray().filter((n) => n.op === "ScatterElements")).toHaveLength(2 * CONFIG.layers);
    lowerAttention(model);
    const after = await runSteps(modelBytes(model));
    steps.forEach((_, i) => {
      const [b, a] = [before[i]!, after[i]!];
      (a["logits"]!.data as Float32Array).forEach((x, j) => expect(Math.abs(x - (b["logits"]!.data as Float32Array)[j]!)).toBeLessThanOrEqual(1e-5));
      expect(a["present.0.key"]!.dims).toEqual(b["present.0.key"]!.dims);
      // Rows up to the valid length are what both wrote; the rest of the buffer is unspecified.
      const valid = [3, 4][i]!;
      (a["present.0.key"]!.data as Float32Array).forEach((x, j) => {
        if (Math.floor(j / D) % BUFFER < valid) expect(Math.abs(x - (b["present.0.key"]!.data as Float32Array)[j]!)).toBeLessThanOrEqual(1e-5);
      });
    });
  });
});

/** One batch row: `tokens` new tokens after `past` cached ones, in a cache buffer of 8 rows. */
function bufferedStep(tokens: number, past: number): Record<string, ort.Tensor> {
  const next = rng(past + 1);
  const ids = (values: number[], dims: number[]) => new ort.Tensor("int64", BigInt64Array.from(values, BigInt), dims);
  const feeds: Record<string, ort.Tensor> = {
    input_ids: ids(Array.from({ length: tokens }, (_, i) => 3 + i), [1, tokens]),
    attention_mask: ids(Array(past + tokens).fill(1), [1, past + tokens]),
    position_ids: ids(Array.from({ length: tokens }, (_, i) => past + i), [1, tokens]),
  };
  for (let l = 0; l < CONFIG.layers; l++) {
    for (const kind of ["key", "value"]) {
      feeds[`past_key_values.${l}.${kind}`] = new ort.Tensor("float32", Float32Array.from({ length: HKV * 8 * D }, () => next() * 2 - 1), [1, HKV, 8, D]);
    }
  }
  return feeds;
}
