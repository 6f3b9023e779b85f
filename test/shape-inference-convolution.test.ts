import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { Builder, DataType, Graph, Model, type TensorType, type Value } from "../graph/ir/index.ts";
import { inferShapes } from "../graph/ir/shape-inference/index.ts";
import { saveModel } from "../graph/onnx/index.ts";

const shapeOf = (v: Value) => (v.type as TensorType).shape;

/** Runs `graph` in onnxruntime on zero inputs of the given concrete shapes and returns each output's dims. */
async function runShapes(graph: Graph, inputs: Record<string, number[]>): Promise<(readonly number[])[]> {
  const dir = mkdtempSync(join(tmpdir(), "pipec-conv-"));
  try {
    saveModel(new Model({ graph, opsets: { "": 21 } }), join(dir, "m.onnx"));
    const session = await ort.InferenceSession.create(join(dir, "m.onnx"));
    const feeds = Object.fromEntries(Object.entries(inputs).map(([name, dims]) => [name, new ort.Tensor("float32", new Float32Array(dims.reduce((a, b) => a * b, 1)), dims)]));
    const out = await session.run(feeds);
    await session.release();
    return graph.outputs.map((v) => out[v.name].dims);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("shape inference: convolution and padding", () => {
  it("keeps the sequence length of a causal depthwise Conv1d (the LFM2 short-conv layer)", () => {
    const g = new Graph();
    const b = new Builder(g);
    const x = b.input("x", DataType.FLOAT, ["B", 32, "S"]);
    const w = b.input("w", DataType.FLOAT, [32, 1, 3]);
    const y = b.op.Conv(x, w, { group: 32, pads: [2, 0] });
    const same = b.op.Conv(x, w, { group: 32, auto_pad: "SAME_UPPER" });
    const valid = b.op.Conv(x, w, { group: 32 });
    inferShapes(g);
    expect(shapeOf(y)).toEqual(["B", 32, "S"]);
    expect(shapeOf(same)).toEqual(["B", 32, "S"]);
    expect(shapeOf(valid)).toEqual(["B", 32, "S - 2"]);
  });

  it("matches onnxruntime on strided, dilated and padded Conv2d and on Pad", async () => {
    const g = new Graph();
    const b = new Builder(g);
    const x = b.input("x", DataType.FLOAT, [1, 3, 11, 10]);
    const w = b.input("w", DataType.FLOAT, [8, 3, 3, 2]);
    const outs = [
      b.op.Conv(x, w, { strides: [2, 3], pads: [1, 0, 1, 1] }),
      b.op.Conv(x, w, { dilations: [2, 2] }),
      b.op.Conv(x, w, { strides: [2, 2], auto_pad: "SAME_LOWER" }),
      b.op.Pad(x, b.int64([0, 0, 1, 2, 0, 0, 3, 4])),
    ];
    outs.forEach((v, i) => b.output(v, `y${i}`));
    inferShapes(g);
    const actual = await runShapes(g, { x: [1, 3, 11, 10], w: [8, 3, 3, 2] });
    expect(outs.map(shapeOf)).toEqual(actual);
    expect(actual[3]).toEqual([1, 3, 15, 16]);
  });
});
