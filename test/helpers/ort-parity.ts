import { toBinary } from "@bufbuild/protobuf";
import * as ort from "onnxruntime-node";
import { expect } from "vitest";
import type { Model } from "../../graph/ir/model.ts";
import { modelToProto } from "../../graph/ir/to-proto.ts";
import { ModelProtoSchema } from "../../graph/onnx/generated/onnx_pb.ts";
import { seededFeeds } from "./ort-inputs.ts";

/** The model as one protobuf, weights inline: what onnxruntime loads from memory. */
export function modelBytes(model: Model): Uint8Array {
  return toBinary(ModelProtoSchema, modelToProto(model));
}

/** Runs a model (IR, bytes or a path) on seeded inputs in onnxruntime-node. */
export async function runOrt(model: Model | Uint8Array | string, seed = 1): Promise<Record<string, ort.Tensor>> {
  const source = typeof model === "string" || model instanceof Uint8Array ? model : modelBytes(model);
  const session = typeof source === "string" ? await ort.InferenceSession.create(source) : await ort.InferenceSession.create(source);
  try {
    return await session.run(seededFeeds(session, seed));
  } finally {
    await session.release();
  }
}

/** Same output names, dtypes, dims and bytes. */
export function expectBitEqual(actual: Record<string, ort.Tensor>, expected: Record<string, ort.Tensor>): void {
  expect(Object.keys(actual).sort()).toEqual(Object.keys(expected).sort());
  for (const [name, e] of Object.entries(expected)) {
    const a = actual[name]!;
    expect({ name, type: a.type, dims: a.dims }).toEqual({ name, type: e.type, dims: e.dims });
    const bytes = (t: ort.Tensor) => {
      const d = t.data as ArrayBufferView;
      return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
    };
    expect(Buffer.compare(bytes(a), bytes(e)), `output '${name}' differs`).toBe(0);
  }
}
