import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type * as ort from "onnxruntime-node";
import { afterAll, describe, expect, it } from "vitest";
import { loadModel, saveModel } from "../../compiler/onnx/index.ts";
import { argmax, DecoderModel, type DecoderSequence } from "../../runtime/index.ts";
import { liftAttention } from "../attention/lift.ts";
import { lowerAttention } from "../attention/lower.ts";
import { tokenSelect, type TokenSelectOptions } from "../token-select.ts";
import { appendOnlyWhereAllowed } from "./append-only.ts";

// sotu-tiny: the project's trained model (4 layers, 8 query / 4 KV heads of 32).
const TRAINED = join(import.meta.dirname, "..", "..", "examples", "models", "sotu-tiny", "model.onnx");
const SCRATCH = mkdtempSync(join(tmpdir(), "pipec-selection-cache-"));
afterAll(() => rmSync(SCRATCH, { recursive: true, force: true }));

const PROMPT = [1, ...Array.from({ length: 47 }, (_, i) => 100 + ((i * 37) % 900))];
const SMALL: TokenSelectOptions = { topK: { tokens: 12 }, sinks: 4, window: 8, kernelSize: -1 };
const COVERING: TokenSelectOptions = { ...SMALL, topK: { tokens: 1 << 20 } };

let saved = 0;
async function compile(options: TokenSelectOptions, appendOnly = false): Promise<DecoderModel> {
  const model = loadModel(TRAINED);
  liftAttention(model);
  expect(tokenSelect(model, options)).toBe(4);
  if (appendOnly) expect(appendOnlyWhereAllowed(model, { options: {}, note() {} })).toBe(true);
  lowerAttention(model);
  const path = join(SCRATCH, `model-${saved++}.onnx`);
  saveModel(model, path, { weights: "inline" });
  return DecoderModel.open(path, { device: "cpu" });
}

/** Greedy decoding of `steps` tokens after the prompt: each step's last logits and token. */
async function greedy(sequence: DecoderSequence, steps: number): Promise<{ tokens: number[]; logits: Float32Array[] }> {
  const tokens: number[] = [];
  const logits: Float32Array[] = [];
  let out: ort.Tensor = await sequence.forward(PROMPT);
  for (let i = 0; i < steps; i++) {
    const V = out.dims[2]!;
    const last = (out.data as Float32Array).slice((out.dims[1]! - 1) * V);
    logits.push(last);
    tokens.push(argmax(last));
    out = await sequence.forward([tokens.at(-1)!]);
  }
  return { tokens, logits };
}

function maxDiff(a: Float32Array[], b: Float32Array[]): number {
  return Math.max(...a.map((x, i) => Math.max(...x.map((v, j) => Math.abs(v - b[i]![j]!)))));
}

const STEPS = 24;
const LAYERS = 4;

describe("tokenselect's selection cache on the trained sotu-tiny", () => {
  it("never reusing (threshold > 1) decodes exactly as the cache-less pass", async () => {
    const plain = await greedy((await compile(SMALL)).newSequence(), STEPS);
    const sequence = (await compile({ ...SMALL, selectionCache: { threshold: 1.01 } })).newSequence();
    const cached = await greedy(sequence, STEPS);
    expect(sequence.selection.reused).toBe(0);
    // The prefill step leaves nothing to reuse: one decision per layer per decode step.
    expect(sequence.selection.recomputed).toBe(LAYERS * STEPS);
    expect(cached.tokens).toEqual(plain.tokens);
    expect(maxDiff(cached.logits, plain.logits)).toBe(0);
  });

  it("reusing with a budget covering the context is exact vs dense (rows appended since a selection are attended)", async () => {
    const dense = await greedy((await DecoderModel.open(TRAINED, { device: "cpu" })).newSequence(), STEPS);
    for (const appendOnly of [false, true]) {
      const sequence = (await compile({ ...COVERING, selectionCache: { threshold: 0 } }, appendOnly)).newSequence();
      const cached = await greedy(sequence, STEPS);
      expect(sequence.selection.reused).toBeGreaterThan(0);
      expect(cached.tokens).toEqual(dense.tokens);
      expect(maxDiff(cached.logits, dense.logits)).toBeLessThanOrEqual(1e-4);
    }
  });

  it("is hit at a moderate threshold and stays close to the cache-less selection", async () => {
    const plain = await greedy((await compile(SMALL)).newSequence(), STEPS);
    const sequence = (await compile({ ...SMALL, selectionCache: { threshold: 0.5 } })).newSequence();
    const cached = await greedy(sequence, STEPS);
    const { reused, recomputed } = sequence.selection;
    const agreement = cached.tokens.filter((t, i) => t === plain.tokens[i]).length / STEPS;
    console.log(`selection cache at cosine 0.5: ${reused} of ${reused + recomputed} layer-steps reused; greedy agreement with the cache-less pass ${(100 * agreement).toFixed(0)}%`);
    expect(reused + recomputed).toBe(LAYERS * STEPS);
    expect(reused).toBeGreaterThan(0);
    expect(agreement).toBeGreaterThanOrEqual(0.5);
  });

  it("forgets its selections on truncate: the rows they indexed may be gone", async () => {
    const sequence = (await compile({ ...COVERING, selectionCache: { threshold: 0 } })).newSequence();
    await greedy(sequence, 4);
    sequence.truncate(PROMPT.length);
    const { reused, recomputed } = sequence.selection;
    await sequence.forward([7]);
    // Nothing kept: every layer chooses afresh.
    expect(sequence.selection.reused).toBe(reused);
    expect(sequence.selection.recomputed).toBe(recomputed + LAYERS);
  });
});
