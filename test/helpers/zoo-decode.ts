// Drives an Optimum-convention decoder through onnxruntime-node with its KV cache fed back:
// the first step starts from past length 0, each later step feeds present.* as past_key_values.*.
// Batch 1, attention mask all ones, absolute positions.

import { toBinary } from "@bufbuild/protobuf";
import * as ort from "onnxruntime-node";
import { modelToProto, type Model } from "../../graph/ir/index.ts";
import { ModelProtoSchema } from "../../graph/onnx/generated/onnx_pb.ts";

export interface StepResult {
  /** Logits of every position of the step, [S, V] row-major. */
  logits: Float32Array;
  vocab: number;
  /** Length of present.0.key along its sequence axis: P + S when the cache grows by exactly the step. */
  cacheLength: number;
}

export class CachedDecoder {
  private past: Record<string, ort.Tensor> = {};
  private pastLength = 0;

  private constructor(private readonly session: ort.InferenceSession) {
    for (const meta of session.inputMetadata) {
      if (!meta.name.startsWith("past_key_values.") || !meta.isTensor) continue;
      // [B, Hkv, P, D]: Hkv and D are numbers, B and P symbolic.
      const dims = meta.shape.map((d, axis) => (axis === 0 ? 1 : typeof d === "number" ? d : 0));
      this.past[meta.name] = new ort.Tensor("float32", new Float32Array(0), dims);
    }
  }

  static async open(model: string | Uint8Array): Promise<CachedDecoder> {
    // create() has one overload per argument type; a union matches neither.
    const session = typeof model === "string" ? await ort.InferenceSession.create(model) : await ort.InferenceSession.create(model);
    return new CachedDecoder(session);
  }

  async step(tokens: number[]): Promise<StepResult> {
    const S = tokens.length;
    const T = this.pastLength + S;
    const ids = (values: number[]) => new ort.Tensor("int64", BigInt64Array.from(values, BigInt), [1, values.length]);
    const out = await this.session.run({
      ...this.past,
      input_ids: ids(tokens),
      attention_mask: ids(new Array(T).fill(1)),
      position_ids: ids(Array.from({ length: S }, (_, i) => this.pastLength + i)),
    });
    for (const name of Object.keys(this.past)) this.past[name] = out[name.replace("past_key_values.", "present.")];
    this.pastLength = T;
    const logits = out.logits;
    const cacheLength = out["present.0.key"]?.dims[2] ?? 0;
    return { logits: logits.data as Float32Array, vocab: logits.dims[2], cacheLength };
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

/** The row of the last position. */
export function lastRow(r: StepResult): Float32Array {
  return r.logits.subarray(r.logits.length - r.vocab);
}

export function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

/** Serialises a small in-memory model (inline weights) for InferenceSession.create. */
export function modelToBytes(model: Model): Uint8Array {
  return toBinary(ModelProtoSchema, modelToProto(model));
}
