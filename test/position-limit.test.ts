import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadModel } from "../graph/onnx/index.ts";
import { gpt2Config, llamaConfig, writeZooModel } from "../graph/zoo/index.ts";
import { cycle, handmadeModel } from "./helpers/handmade-models.ts";
import { loadModelFromBytes } from "../graph/onnx/load.ts";
import { tempDir } from "./helpers/tmp.ts";
import { graphPositionLimit } from "../compiler/pipeline/position-limit.ts";

const dir = tempDir("pipec-positions-");
const small = { layers: 1, hidden: 32, heads: 2, vocabSize: 50, maxPositions: 24 };

describe("graphPositionLimit", () => {
  it("reads GPT-2's position-embedding table (wpe rows)", () => {
    const { modelPath } = writeZooModel(gpt2Config(small), join(dir, "gpt2"));
    expect(graphPositionLimit(loadModel(modelPath))).toBe(24);
  });

  it("reads the rotary cos/sin cache, gathered at the positions or fed to a fused RotaryEmbedding", () => {
    for (const encoding of ["decomposed", "ms"] as const) {
      const { modelPath } = writeZooModel(llamaConfig({ ...small, maxPositions: 40 }), join(dir, `llama-${encoding}`), { encoding });
      expect(graphPositionLimit(loadModel(modelPath)), encoding).toBe(40);
    }
  });

  it("is unknown for a graph without a position table, and terminates on a cycle", () => {
    expect(graphPositionLimit(loadModelFromBytes(handmadeModel([["r", "Relu", ["x"], ["y"]]])))).toBeUndefined();
    expect(graphPositionLimit(loadModelFromBytes(handmadeModel(cycle)))).toBeUndefined();
  });
});
