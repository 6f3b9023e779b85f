import { Builder } from "../../graph/ir/builder.ts";
import { DataType } from "../../graph/ir/dtype.ts";
import type { Model } from "../../graph/ir/model.ts";
import { tensorType } from "../../graph/ir/types.ts";
import { PipecError } from "../../graph/errors.ts";
import type { Pass, PassContext, PassResult } from "../../graph/pass-manager/pass.ts";
import { CLS_ATTENTION_OUTPUT, PIXEL_VALUES, VISUAL_TOKEN_DISTANCES_OUTPUT } from "../../runtime/contract-names.ts";

/**
 * Diversity-based visual token pruning (DivPrune, ToDRE's first stage) starts from the cosine
 * distances between every pair of visual tokens: [Nv, Nv] dot products of C-wide rows, the one
 * part of the selection that grows as Nv^2 * C. This pass computes them in the vision encoder's
 * graph, beside the tokens, so the runtime's greedy selection only reads them:
 *   visual_token_distances [B, Nv, Nv] = 1 - normalize(X) normalize(X)^T, X = the visual tokens.
 * It only adds an output; the encoder's own outputs are unchanged.
 */
export function createVisualTokenDistances(): Pass {
  return {
    name: "visual-token-distances",
    description: "add the cosine distances between the vision encoder's visual tokens as an output, for diversity-based pruning",
    run(model: Model, _ctx: PassContext): PassResult {
      if (model.graph.outputs.some((v) => v.name === VISUAL_TOKEN_DISTANCES_OUTPUT)) return { changed: false, stats: { "outputs-added": 0 } };
      const tokens = model.graph.outputs.find((v) => v.name !== CLS_ATTENTION_OUTPUT);
      const shape = tokens?.type?.kind === "tensor" ? tokens.type.shape : undefined;
      if (!tokens || !model.graph.inputs.some((v) => v.name === PIXEL_VALUES) || shape?.length !== 3) {
        throw new PipecError("not-a-vision-encoder", "visual-token-distances needs a vision encoder: a pixel_values input and visual tokens [B, Nv, C] as its first output");
      }
      const b = new Builder(model.graph, { provenance: "visual-token-distances" });
      const unit = b.op.LpNormalization(tokens, { axis: -1, p: 2 });
      const similarity = b.op.MatMul(unit, b.op.Transpose(unit, { perm: [0, 2, 1] }));
      const distances = b.op.Sub(b.float32(1), similarity);
      b.output(distances, VISUAL_TOKEN_DISTANCES_OUTPUT, tensorType(DataType.FLOAT, [shape[0]!, shape[1]!, shape[1]!]));
      return { changed: true, stats: { "outputs-added": 1 } };
    },
  };
}
