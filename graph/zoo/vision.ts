import { Builder } from "../ir/builder.ts";
import { DataType } from "../ir/dtype.ts";
import { Model } from "../ir/model.ts";
import type { Value } from "../ir/value.ts";
import { layerNorm } from "./norms.ts";
import type { WeightInit, WeightSource } from "./weights.ts";

/** A CLIP-style ViT and a LLaVA-style two-layer projector into a decoder's embedding width. */
export interface VisionConfig {
  imageSize: number;
  patchSize: number;
  width: number;
  layers: number;
  heads: number;
  intermediate: number;
  /** The decoder's hidden size: the projector's output width. */
  projection: number;
  layerNormEps: number;
}

export function visionConfig(overrides: Partial<VisionConfig> = {}): VisionConfig {
  return { imageSize: 64, patchSize: 4, width: 48, layers: 2, heads: 4, intermediate: 96, projection: 64, layerNormEps: 1e-5, ...overrides };
}

export function visualTokens(c: VisionConfig): number {
  return (c.imageSize / c.patchSize) ** 2;
}

const B = "batch_size";

/**
 * pixel_values [B, 3, H, W] -> image_features [B, Nv, P] (the patch tokens of the last layer,
 * [CLS] dropped, through the projector) and cls_attention [B, Nv] (the last layer's [CLS] ->
 * patch attention, mean over heads), as tools/train_tiny_vlm.py exports transformers' CLIP.
 * Pre-LayerNorm blocks with quick-GELU MLPs (CLIP's), an erf-GELU projector (LLaVA's).
 */
export function buildVisionEncoder(c: VisionConfig, weights: WeightSource): Model {
  const model = new Model({ opsets: { "": 18 } });
  const b = new Builder(model.graph);
  const w = (name: string, dims: readonly number[], init: WeightInit): Value => model.graph.addInitializer(weights.weight(name, dims, init), name);
  const uniform = (fanIn: number): WeightInit => ({ kind: "uniform", std: 1 / Math.sqrt(fanIn) });
  const { width: C, patchSize: p, heads: H } = c;
  const N = visualTokens(c);
  const D = C / H;
  const linear = (x: Value, name: string, dims: [number, number]) => b.op.Add(b.op.MatMul(x, w(`${name}.weight`, dims, uniform(dims[0]))), w(`${name}.bias`, [dims[1]], { kind: "uniform", std: 0.02 }));
  const norm = (x: Value, name: string) => layerNorm(b, x, w(`${name}.weight`, [C], { kind: "gain" }), w(`${name}.bias`, [C], { kind: "uniform", std: 0.02 }), c.layerNormEps);

  const pixels = b.input("pixel_values", DataType.FLOAT, [B, 3, c.imageSize, c.imageSize]);
  const patches = b.op.Conv(pixels, w("vision.embeddings.patch_embedding.weight", [C, 3, p, p], uniform(3 * p * p)), { kernel_shape: [p, p], strides: [p, p] });
  const tokens = b.op.Transpose(b.op.Reshape(patches, b.int64([0, C, N])), { perm: [0, 2, 1] }); // [B, N, C]
  const batch = b.op.Slice(b.op.Shape(pixels), b.int64([0]), b.int64([1]));
  const cls = b.op.Expand(w("vision.embeddings.class_embedding", [1, 1, C], { kind: "uniform", std: 1 }), b.op.Concat(batch, b.int64([1, C]), { axis: 0 }));
  let h = b.op.Add(b.op.Concat(cls, tokens, { axis: 1 }), w("vision.embeddings.position_embedding.weight", [N + 1, C], { kind: "uniform", std: 0.5 }));
  h = norm(h, "vision.pre_layrnorm");

  const toHeads = (x: Value) => b.op.Transpose(b.op.Reshape(x, b.int64([0, 0, H, D])), { perm: [0, 2, 1, 3] }); // [B, H, N+1, D]
  let probs: Value | undefined;
  for (let i = 0; i < c.layers; i++) {
    const prefix = `vision.encoder.layers.${i}`;
    const x = norm(h, `${prefix}.layer_norm1`);
    const [q, k, v] = (["q", "k", "v"] as const).map((n) => toHeads(linear(x, `${prefix}.self_attn.${n}_proj`, [C, C])));
    const scores = b.op.Mul(b.op.MatMul(q!, b.op.Transpose(k!, { perm: [0, 1, 3, 2] })), b.float32(1 / Math.sqrt(D)));
    probs = b.op.Softmax(scores, { axis: -1 });
    const attended = b.op.Reshape(b.op.Transpose(b.op.MatMul(probs, v!), { perm: [0, 2, 1, 3] }), b.int64([0, 0, C]));
    h = b.op.Add(h, linear(attended, `${prefix}.self_attn.out_proj`, [C, C]));
    const inner = linear(norm(h, `${prefix}.layer_norm2`), `${prefix}.mlp.fc1`, [C, c.intermediate]);
    const quickGelu = b.op.Mul(inner, b.op.Sigmoid(b.op.Mul(inner, b.float32(1.702))));
    h = b.op.Add(h, linear(quickGelu, `${prefix}.mlp.fc2`, [c.intermediate, C]));
  }
  const patchTokens = b.op.Slice(h, b.int64([1]), b.int64([N + 1]), b.int64([1])); // [B, N, C]
  const hidden = linear(patchTokens, "multi_modal_projector.linear_1", [C, c.projection]);
  const gelu = b.op.Mul(b.op.Mul(hidden, b.float32(0.5)), b.op.Add(b.float32(1), b.op.Erf(b.op.Mul(hidden, b.float32(Math.SQRT1_2)))));
  b.output(b.typed(linear(gelu, "multi_modal_projector.linear_2", [c.projection, c.projection]), DataType.FLOAT, [B, N, c.projection]), "image_features");
  // The [CLS] row of the last layer's attention, patches only, averaged over heads.
  const clsRow = b.op.Slice(b.op.Gather(probs!, b.int64(0), { axis: 2 }), b.int64([1]), b.int64([N + 1]), b.int64([2])); // [B, H, N]
  b.output(b.typed(b.op.ReduceMean(clsRow, b.int64([1]), { keepdims: 0 }), DataType.FLOAT, [B, N]), "cls_attention");
  return model;
}
