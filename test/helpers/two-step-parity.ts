import * as ort from "onnxruntime-node";
import { seededFeeds } from "./ort-inputs.ts";

/**
 * Test support: runs a decoder export for a 3-token prefill on seeded feeds, then one decode step
 * with every present.* fed back as its past.* input, and returns both steps' outputs.
 */
export async function prefillAndDecode(model: Uint8Array): Promise<Record<string, ort.Tensor>[]> {
  const session = await ort.InferenceSession.create(model);
  try {
    const prefill = await session.run(seededFeeds(session, 7));
    const decode = await session.run(decodeFeeds(session, prefill, 3));
    return [prefill, decode];
  } finally {
    await session.release();
  }
}

/** Feeds for one new token at position `past`: ids 5, mask of ones over past + 1 keys, present as past. */
function decodeFeeds(session: ort.InferenceSession, prefill: Record<string, ort.Tensor>, past: number): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const meta of session.inputMetadata) {
    if (!meta.isTensor) continue;
    const name = meta.name;
    if (/past/.test(name)) {
      const present = prefill[presentName(name)];
      if (!present) throw new Error(`no output feeds ${name} back (looked for ${presentName(name)})`);
      feeds[name] = present;
      continue;
    }
    const [values, dims] = /mask/.test(name) ? [Array(past + 1).fill(1), [1, past + 1]] : /position/.test(name) ? [[past], [1, 1]] : [[5], [1, 1]];
    feeds[name] = meta.type === "int32" ? new ort.Tensor("int32", Int32Array.from(values), dims) : new ort.Tensor("int64", BigInt64Array.from(values, BigInt), dims);
  }
  return feeds;
}

function presentName(past: string): string {
  return past.replace("past_key_values", "present").replace(/^past/, "present");
}

/** Largest absolute difference over every output of every step (float16 decoded). */
export function maxDifference(a: Record<string, ort.Tensor>[], b: Record<string, ort.Tensor>[]): number {
  let worst = 0;
  a.forEach((step, i) => {
    for (const [name, t] of Object.entries(step)) {
      const other = b[i]![name];
      if (!other || other.dims.join() !== t.dims.join()) return (worst = Infinity);
      const x = floats(t);
      const y = floats(other);
      for (let j = 0; j < x.length; j++) worst = Math.max(worst, Math.abs(x[j]! - y[j]!));
    }
  });
  return worst;
}

function floats(t: ort.Tensor): ArrayLike<number> {
  if (t.type !== "float16") return t.data as Float32Array;
  return Float32Array.from(t.data as Uint16Array, halfToFloat);
}

function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}
