import { describe, expect, it } from "vitest";
import { Builder, DataType, Graph, type TensorType } from "../graph/ir/index.ts";
import { inferShapes } from "../graph/ir/shape-inference/index.ts";
import { fastest } from "./helpers/fastest.ts";

/** A chain of `blocks` x 4 nodes mixing broadcasting, shape values and reshapes over symbolic dims. */
function chain(blocks: number): { graph: Graph; last: () => TensorType } {
  const graph = new Graph();
  const b = new Builder(graph);
  let x = b.input("x", DataType.FLOAT, ["batch_size", "sequence_length", 64]);
  const bias = b.float32(new Array(64).fill(0.5));
  for (let i = 0; i < blocks; i++) {
    x = b.op.Relu(b.op.Add(x, bias));
    x = b.op.Reshape(x, b.op.Shape(x));
  }
  const out = x;
  return { graph, last: () => out.type as TensorType };
}

/** The fastest of three inferences, each on a fresh chain. */
function timeInference(blocks: number): number {
  const chains = [chain(blocks), chain(blocks), chain(blocks)];
  const { ms } = fastest(3, () => {
    const { graph, last } = chains.pop()!;
    expect(inferShapes(graph).inferred).toBe(blocks * 4);
    expect(last().shape).toEqual(["batch_size", "sequence_length", 64]);
  });
  return ms;
}

describe("shape inference scale", () => {
  it("is linear in graph size (100k-node chain)", () => {
    timeInference(2_500); // warm up the JIT
    const small = timeInference(6_250);
    const large = timeInference(25_000);
    console.log(`shape inference: 25k nodes ${small.toFixed(0)} ms, 100k nodes ${large.toFixed(0)} ms`);
    // 4x the nodes: linear is ~4x; allow noise on a shared machine, but not quadratic (16x).
    expect(large).toBeLessThan(Math.max(10 * small, 200));
  });
});
