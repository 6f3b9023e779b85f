import type { Model } from "../ir/model.ts";
import type { Value } from "../ir/value.ts";
import { headDim, type AttentionEncoding, type Gpt2Config } from "./config.ts";
import { buildDecoder, type DecoderContext } from "./decoder.ts";
import { layerNorm } from "./norms.ts";
import type { WeightSource } from "./weights.ts";

/**
 * A GPT-2 decoder: learned positions, LayerNorm, fused c_attn split into q/k/v, MHA, tanh-GELU,
 * classifier tied to the token embedding. Matrices are [in, out] as in GPT-2's Conv1D.
 */
export function buildGpt2(c: Gpt2Config, encoding: AttentionEncoding, weights: WeightSource): Model {
  const attention = { heads: c.heads, kvHeads: c.heads, headDim: headDim(c), scaleOp: "div" as const };
  return buildDecoder({ layers: c.layers, vocabSize: c.vocabSize, attention, encoding }, weights, (ctx) => {
    const { b } = ctx;
    const std = 1 / Math.sqrt(c.hidden);
    const tokens = ctx.weight("transformer.wte.weight", [c.vocabSize, c.hidden], { kind: "uniform", std });
    const positions = ctx.weight("transformer.wpe.weight", [c.maxPositions, c.hidden], { kind: "uniform", std });
    let h = b.op.Add(b.op.Gather(tokens, ctx.inputs.inputIds!), b.op.Gather(positions, ctx.inputs.positionIds));
    for (let i = 0; i < c.layers; i++) h = block(ctx, c, i, h);
    const normed = norm(ctx, c, "transformer.ln_f", h);
    return b.op.MatMul(normed, b.op.Transpose(tokens, { perm: [1, 0] }));
  });
}

function norm(ctx: DecoderContext, c: Gpt2Config, name: string, x: Value): Value {
  const gain = ctx.weight(`${name}.weight`, [c.hidden], { kind: "gain" });
  const bias = ctx.weight(`${name}.bias`, [c.hidden], { kind: "uniform", std: 0.02 });
  return layerNorm(ctx.b, x, gain, bias, c.layerNormEps);
}

function block(ctx: DecoderContext, c: Gpt2Config, i: number, h: Value): Value {
  const { b } = ctx;
  const prefix = `transformer.h.${i}`;
  const linear = (x: Value, name: string, dims: [number, number], std: number) => {
    const y = b.op.MatMul(x, ctx.weight(`${prefix}.${name}.weight`, dims, { kind: "uniform", std }));
    return b.op.Add(y, ctx.weight(`${prefix}.${name}.bias`, [dims[1]], { kind: "uniform", std: 0.02 }));
  };
  const residualStd = (fanIn: number) => 1 / Math.sqrt(fanIn * 2 * c.layers);

  const qkv = linear(norm(ctx, c, `${prefix}.ln_1`, h), "attn.c_attn", [c.hidden, 3 * c.hidden], 1 / Math.sqrt(c.hidden));
  const split = b.node("Split", [qkv, b.int64([c.hidden, c.hidden, c.hidden])], { outputs: 3, attributes: { axis: -1 } });
  const attended = ctx.attend(i, { q: split.output(0), k: split.output(1), v: split.output(2) });
  h = b.op.Add(h, linear(attended, "attn.c_proj", [c.hidden, c.hidden], residualStd(c.hidden)));

  const inner = linear(norm(ctx, c, `${prefix}.ln_2`, h), "mlp.c_fc", [c.hidden, c.intermediate], 1 / Math.sqrt(c.hidden));
  return b.op.Add(h, linear(geluTanh(ctx, inner), "mlp.c_proj", [c.intermediate, c.hidden], residualStd(c.intermediate)));
}

/** GPT-2's gelu_new, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as torch exports it. */
function geluTanh(ctx: DecoderContext, x: Value): Value {
  const { b } = ctx;
  const cubic = b.op.Add(x, b.op.Mul(b.op.Pow(x, b.float32(3)), b.float32(0.044715)));
  const t = b.op.Tanh(b.op.Mul(cubic, b.float32(Math.sqrt(2 / Math.PI))));
  return b.op.Mul(b.op.Mul(x, b.float32(0.5)), b.op.Add(t, b.float32(1)));
}
