/**
 * The memory-bandwidth limit of decoding, for bench/runtime.ts. One decode step of batch 1 reads
 * every weight once, so no runtime can beat (bandwidth / weight bytes read per token) tokens/s.
 * The bandwidth is measured, not quoted: onnxruntime running a single matrix-vector product
 * [1, K] x [K, N] over a weight much larger than the caches, the fastest way it streams weights.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { Builder, DataType, Model, Tensor } from "../graph/ir/index.ts";
import { loadModel, saveModel } from "../graph/onnx/index.ts";

const K = 8192;
const N = 8192; // 256 MiB of float32 weights

function matVecModel(): string {
  const path = join(import.meta.dirname, "models", "bandwidth", `matvec-${K}x${N}.onnx`);
  if (existsSync(path)) return path;
  const model = new Model({ opsets: { "": 18 } });
  const b = new Builder(model.graph);
  const x = b.input("x", DataType.FLOAT, [1, K]);
  const weights = new Float32Array(K * N);
  for (let i = 0; i < weights.length; i++) weights[i] = ((i * 2654435761) % 1000) / 1000 - 0.5;
  const w = b.graph.addInitializer(Tensor.fromArray("w", DataType.FLOAT, [K, N], weights));
  b.output(b.typed(b.op.MatMul(x, w), DataType.FLOAT, [1, N]), "y");
  saveModel(model, path);
  return path;
}

/**
 * Bytes per second of CPU time of a [1, K] x [K, N] MatMul on onnxruntime's CPU provider, over
 * `runs` runs: CPU time, not wall time, so that other jobs on a shared machine do not count.
 */
export async function measureMatVecBandwidth(threads: number, runs = 20): Promise<number> {
  const session = await ort.InferenceSession.create(matVecModel(), { intraOpNumThreads: threads, interOpNumThreads: 1 });
  try {
    const feeds = { x: new ort.Tensor("float32", new Float32Array(K).fill(0.5), [1, K]) };
    for (let i = 0; i < 3; i++) await session.run(feeds);
    const start = process.cpuUsage();
    for (let i = 0; i < runs; i++) await session.run(feeds);
    const cpu = process.cpuUsage(start);
    return (runs * K * N * 4) / ((cpu.user + cpu.system) / 1e6);
  } finally {
    await session.release();
  }
}

/**
 * Weight bytes one decode step reads: every initializer, except those only ever gathered from
 * (an untied embedding: one row per token). A tied embedding is also the classifier, read whole.
 */
export function weightBytesPerToken(modelPath: string): number {
  const { graph } = loadModel(modelPath);
  let bytes = 0;
  for (const value of graph.initializers.values()) {
    const onlyGathered = value.uses.length > 0 && value.uses.every((u) => u.node.op === "Gather" && u.index === 0);
    if (!onlyGathered) bytes += value.initializer!.byteLength;
  }
  return bytes;
}
