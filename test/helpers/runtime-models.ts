// Test support: where the models are, and an independent greedy baseline that uses no
// runtime code. The baseline recomputes the whole sequence every step with an empty
// cache, so it exercises none of the cache handling it is compared against.
import { existsSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import * as ort from "onnxruntime-node";
import { HAVE_SHARED, SHARED_FIXTURES } from "./fixtures.ts";

export { HAVE_SHARED, SHARED_FIXTURES };
export const NO_SHARED = `skipped: ${SHARED_FIXTURES} is absent (the shared fixture models are not part of a clone)`;

/** The ONNX decoders among the shared fixtures (stories260K is a llama2.c checkpoint, not ONNX). */
export const SHARED_DECODERS = {
  gpt2Fp32: join(SHARED_FIXTURES, "genai-tiny-random-gpt2-fp32/past.onnx"),
  gpt2Fp16: join(SHARED_FIXTURES, "genai-tiny-random-gpt2-fp16/past.onnx"),
  qwen35: join(SHARED_FIXTURES, "genai-tiny-qwen35/decoder.onnx"),
  lfm2: join(SHARED_FIXTURES, "genai-tiny-random-lfm2-fp32/decoder.onnx"),
};
export const GPT2_TOKENIZER = join(SHARED_FIXTURES, "genai-tiny-random-gpt2-fp32/tokenizer.json");

export const REFERENCE_DIR = resolve(import.meta.dirname, "../fixtures/reference");

/** Reference exports (folders with model.onnx + expected.json), when they exist. */
export function referenceExports(): string[] {
  if (!existsSync(REFERENCE_DIR)) return [];
  return readdirSync(REFERENCE_DIR)
    .filter((name) => existsSync(join(REFERENCE_DIR, name, "model.onnx")) && existsSync(join(REFERENCE_DIR, name, "expected.json")))
    .sort();
}

function zeros(meta: ort.InferenceSession.TensorValueMetadata, seqLength: number): ort.Tensor {
  const symbolic = meta.shape.map((d) => typeof d !== "number");
  // Batch is the first symbolic axis, the past length the second (if any).
  let seen = 0;
  const dims = meta.shape.map((d, i) => (symbolic[i] ? (seen++ === 0 ? 1 : seqLength) : (d as number)));
  const size = dims.reduce((a, b) => a * b, 1);
  const data = meta.type === "float16" ? new Uint16Array(size) : new Float32Array(size);
  return new ort.Tensor(meta.type as "float32", data, dims);
}

function ints(type: string, values: number[]): ort.Tensor {
  return type === "int64"
    ? new ort.Tensor("int64", BigInt64Array.from(values, BigInt), [1, values.length])
    : new ort.Tensor("int32", Int32Array.from(values), [1, values.length]);
}

function half(h: number): number {
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  const v = e === 0 ? m * 2 ** -24 : e === 31 ? (m ? NaN : Infinity) : (1 + m / 1024) * 2 ** (e - 15);
  return h & 0x8000 ? -v : v;
}

/** Logits of the last position for `tokens`, computed from scratch (empty past, zero state). */
export async function lastLogitsFromScratch(session: ort.InferenceSession, tokens: number[]): Promise<Float64Array> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const meta of session.inputMetadata) {
    if (!meta.isTensor) continue;
    if (meta.name === "input_ids") feeds[meta.name] = ints(meta.type, tokens);
    else if (meta.name === "attention_mask") feeds[meta.name] = ints(meta.type, tokens.map(() => 1));
    else if (meta.name === "position_ids") feeds[meta.name] = ints(meta.type, tokens.map((_, i) => i));
    else feeds[meta.name] = zeros(meta, 0);
  }
  const { logits } = await session.run(feeds);
  const V = logits.dims[2];
  const data = logits.data as Float32Array | Uint16Array;
  const row = new Float64Array(V);
  const offset = (tokens.length - 1) * V;
  for (let v = 0; v < V; v++) row[v] = logits.type === "float16" ? half(data[offset + v]) : data[offset + v];
  return row;
}

/** Greedy continuation by full recomputation at every step. */
export async function greedyFromScratch(modelPath: string, prompt: number[], maxNewTokens: number): Promise<number[]> {
  const session = await ort.InferenceSession.create(modelPath, { intraOpNumThreads: 1 });
  try {
    const tokens = [...prompt];
    const out: number[] = [];
    while (out.length < maxNewTokens) {
      const row = await lastLogitsFromScratch(session, tokens);
      let best = 0;
      for (let v = 1; v < row.length; v++) if (row[v] > row[best]) best = v;
      out.push(best);
      tokens.push(best);
    }
    return out;
  } finally {
    await session.release();
  }
}
