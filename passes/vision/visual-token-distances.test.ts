import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { isPipecError } from "../../graph/errors.ts";
import { loadModel } from "../../graph/onnx/load.ts";
import { buildZooModel, llamaConfig } from "../../graph/zoo/index.ts";
import { cosineDistances } from "../../runtime/vision/prune/cosine.ts";
import { modelToBytes } from "../../test/helpers/zoo-decode.ts";
import { VISUAL_TOKEN_DISTANCES_OUTPUT } from "../../runtime/contract-names.ts";
import { createVisualTokenDistances } from "./visual-token-distances.ts";

const ENCODER = join(import.meta.dirname, "../../test/fixtures/vision-c32/vision_encoder.onnx");

async function encode(bytes: Uint8Array): Promise<Record<string, ort.Tensor>> {
  const session = await ort.InferenceSession.create(bytes);
  try {
    const pixels = Float32Array.from({ length: 3 * 64 * 64 }, (_, i) => Math.sin(i * 0.37) + ((i * 7919) % 13) / 13);
    return await session.run({ pixel_values: new ort.Tensor("float32", pixels, [1, 3, 64, 64]) });
  } finally {
    await session.release();
  }
}

describe("visual-token-distances", () => {
  it("adds the cosine distances of the visual tokens [B, Nv, Nv], the tokens unchanged", async () => {
    const before = await encode(modelToBytes(loadModel(ENCODER)));
    const model = loadModel(ENCODER);
    expect(createVisualTokenDistances().run(model, { options: {}, note: () => {} })).toEqual({ changed: true, stats: { "outputs-added": 1 } });
    const after = await encode(modelToBytes(model));
    expect(after.image_features!.data).toEqual(before.image_features!.data);
    const [, n, dim] = before.image_features!.dims as [number, number, number];
    expect(after[VISUAL_TOKEN_DISTANCES_OUTPUT]!.dims).toEqual([1, n, n]);
    const host = cosineDistances(before.image_features!.data as Float32Array, n, dim);
    const graph = after[VISUAL_TOKEN_DISTANCES_OUTPUT]!.data as Float32Array;
    let worst = 0;
    for (let i = 0; i < n * n; i++) worst = Math.max(worst, Math.abs(graph[i]! - host[i]!));
    expect(worst).toBeLessThan(1e-5);
  });

  it("adds nothing the second time", () => {
    const model = loadModel(ENCODER);
    createVisualTokenDistances().run(model, { options: {}, note: () => {} });
    expect(createVisualTokenDistances().run(model, { options: {}, note: () => {} }).changed).toBe(false);
  });

  it("refuses a model that is not a vision encoder", () => {
    try {
      createVisualTokenDistances().run(buildZooModel(llamaConfig({ layers: 1 })), { options: {}, note: () => {} });
      expect.unreachable();
    } catch (e) {
      expect(isPipecError(e) && e.message).toMatch(/needs a vision encoder/);
    }
  });
});
