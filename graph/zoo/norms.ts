import { float } from "../ir/attribute.ts";
import type { Builder } from "../ir/builder.ts";
import type { Value } from "../ir/value.ts";
import type { AttentionEncoding } from "./config.ts";

/**
 * RMSNorm in the spelling that goes with each encoding: HF's export (Pow/ReduceMean/Add/Sqrt/
 * Reciprocal/Mul), onnxruntime's SimplifiedLayerNormalization (what genai's builder emits), or
 * ONNX's RMSNormalization-23.
 */
export function rmsNorm(b: Builder, encoding: AttentionEncoding, x: Value, gain: Value, eps: number): Value {
  if (encoding === "ms") return b.op.SimplifiedLayerNormalization(x, gain, { axis: -1, epsilon: float(eps) });
  if (encoding === "standard") return b.op.RMSNormalization(x, gain, { axis: -1, epsilon: float(eps) });
  const meanSquare = b.op.ReduceMean(b.op.Pow(x, b.float32(2)), b.int64([-1]), { keepdims: 1 });
  const inverseRms = b.op.Reciprocal(b.op.Sqrt(b.op.Add(meanSquare, b.float32(eps))));
  return b.op.Mul(gain, b.op.Mul(x, inverseRms));
}

export function layerNorm(b: Builder, x: Value, gain: Value, bias: Value, eps: number): Value {
  return b.op.LayerNormalization(x, gain, bias, { axis: -1, epsilon: float(eps) });
}
