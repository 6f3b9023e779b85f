import { DataType } from "../ir/dtype.ts";
import { Tensor } from "../ir/tensor.ts";

/** How a generated weight is initialised; a checkpoint ignores this and returns what it holds. */
export type WeightInit =
  | { kind: "uniform"; std: number }
  /** Norm gains: 1 plus a little noise, so a layout bug in the norm shows in the logits. */
  | { kind: "gain" };

/**
 * Where the builders get weights from: generated ones for the zoo, a checkpoint for importers.
 * Names follow Hugging Face's, with `.T` for matrices stored [in, out] for MatMul.
 */
export interface WeightSource {
  weight(name: string, dims: readonly number[], init: WeightInit): Tensor;
}

/** Turns float32 values into a Tensor: inline, or appended to an external data file. */
export type TensorSink = (name: string, dims: readonly number[], values: Float32Array) => Tensor;

export const inlineSink: TensorSink = (name, dims, values) => Tensor.fromArray(name, DataType.FLOAT, dims, values);

/** Seeded weights: each tensor's values depend only on the seed and its name, not on build order. */
export class GeneratedWeights implements WeightSource {
  constructor(
    private readonly seed: number,
    private readonly sink: TensorSink = inlineSink,
  ) {}

  weight(name: string, dims: readonly number[], init: WeightInit): Tensor {
    const n = dims.reduce((a, d) => a * d, 1);
    const values = new Float32Array(n);
    const next = mulberry32(hashSeed(this.seed, name));
    // Uniform on [-a, a] has standard deviation a / sqrt(3).
    const [center, halfWidth] = init.kind === "gain" ? [1, 0.1] : [0, init.std * Math.sqrt(3)];
    for (let i = 0; i < n; i++) values[i] = center + (2 * next() - 1) * halfWidth;
    return this.sink(name, dims, values);
  }
}

/** mulberry32: tiny, fast and good enough for weights (and test inputs) that only need to look random. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a over the name, mixed with the seed. */
function hashSeed(seed: number, name: string): number {
  let h = (0x811c9dc5 ^ Math.imul(seed, 0x9e3779b1)) >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}
