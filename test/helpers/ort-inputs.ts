import * as ort from "onnxruntime-node";
import { mulberry32 } from "../../graph/zoo/weights.ts";

/** A small deterministic PRNG so seeded inputs are the same on every machine. */
export const rng = mulberry32;

/**
 * Seeded feeds for any model: symbolic dims get sizes from `dims` (default 1; names containing
 * "past" get 0 so KV-cache models run their first step), ids are small non-negative integers,
 * masks are ones, floats uniform in [-1, 1).
 */
export function seededFeeds(session: ort.InferenceSession, seed = 1, dims: Record<string, number> = {}): Record<string, ort.Tensor> {
  const next = rng(seed);
  const feeds: Record<string, ort.Tensor> = {};
  for (const meta of session.inputMetadata) {
    if (!meta.isTensor) continue;
    const shape = meta.shape.map((d) => (typeof d === "number" && d >= 0 ? d : (dims[String(d)] ?? (/past/i.test(String(d)) ? 0 : /total|seq|len|sequence/i.test(String(d)) ? 3 : 1))));
    const n = shape.reduce((a, b) => a * b, 1);
    const name = meta.name;
    const isMask = /mask/i.test(name);
    switch (meta.type) {
      case "int64":
        feeds[name] = new ort.Tensor("int64", BigInt64Array.from({ length: n }, (_, i) => BigInt(isMask ? 1 : /position/.test(name) ? i % 4 : Math.floor(next() * 16))), shape);
        break;
      case "int32":
        feeds[name] = new ort.Tensor("int32", Int32Array.from({ length: n }, (_, i) => (isMask ? 1 : /position/.test(name) ? i % 4 : Math.floor(next() * 16))), shape);
        break;
      case "float16":
        feeds[name] = new ort.Tensor("float16", Uint16Array.from({ length: n }, () => 0x3c00 - Math.floor(next() * 0x800)), shape);
        break;
      case "bool":
        feeds[name] = new ort.Tensor("bool", Uint8Array.from({ length: n }, () => (next() < 0.5 ? 1 : 0)), shape);
        break;
      default:
        feeds[name] = new ort.Tensor("float32", Float32Array.from({ length: n }, () => next() * 2 - 1), shape);
    }
  }
  return feeds;
}

/** Runs a model file on seeded inputs and returns its outputs' raw data. */
export async function runSeeded(path: string, seed = 1, dims: Record<string, number> = {}): Promise<Record<string, ort.Tensor>> {
  const session = await ort.InferenceSession.create(path);
  try {
    return await session.run(seededFeeds(session, seed, dims));
  } finally {
    await session.release();
  }
}
