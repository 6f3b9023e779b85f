import { join } from "node:path";
import type { Model } from "../../graph/ir/model.ts";
import { loadModel, saveModel } from "../../graph/onnx/index.ts";
import { liftAttention } from "../../passes/attention/lift.ts";
import { lowerAttention } from "../../passes/attention/lower.ts";
import { createTreeAttentionMask } from "../../passes/speculative/tree-attention-mask.ts";

/** The model at `path` (or what `load` gives) compiled with tree-attention-mask, saved beside it as tree.onnx; returns that path. */
export function compileTree(path: string, load: () => Model = () => loadModel(path)): string {
  const model = load();
  liftAttention(model);
  createTreeAttentionMask().run(model, { options: {}, note: () => {} });
  lowerAttention(model);
  const out = join(path, "..", "tree.onnx");
  saveModel(model, out);
  return out;
}
