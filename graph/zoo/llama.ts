import type { Model } from "../ir/model.ts";
import type { Value } from "../ir/value.ts";
import { headDim, type AttentionEncoding, type LlamaConfig } from "./config.ts";
import { buildDecoder, type DecoderContext } from "./decoder.ts";
import { rmsNorm } from "./norms.ts";
import type { WeightSource } from "./weights.ts";

/**
 * A Llama-family decoder (Llama 2/3, Qwen2 with qkvBias): RMSNorm, rotary, GQA, SwiGLU.
 * Matrices are [in, out] initializers named after Hugging Face's parameters.
 */
export function buildLlama(c: LlamaConfig, encoding: AttentionEncoding, weights: WeightSource, inputsEmbeds = false): Model {
  const D = headDim(c);
  const attention = {
    heads: c.heads,
    kvHeads: c.kvHeads,
    headDim: D,
    rotary: { layout: c.rotary, theta: c.ropeTheta, maxPositions: c.maxPositions },
    scaleOp: "mul" as const,
  };
  return buildDecoder({ layers: c.layers, vocabSize: c.vocabSize, attention, encoding, ...(inputsEmbeds && { embedsWidth: c.hidden }) }, weights, (ctx) => {
    const { b } = ctx;
    // A decoder fed inputs_embeds holds the token embedding only as a tied classifier.
    const embedding = inputsEmbeds && !c.tiedEmbeddings ? undefined : ctx.weight(EMBED_TOKENS_WEIGHT, [c.vocabSize, c.hidden], EMBED_TOKENS_INIT(c));
    let h = ctx.inputs.inputsEmbeds ?? b.op.Gather(embedding!, ctx.inputs.inputIds!); // [B, S, hidden]
    for (let i = 0; i < c.layers; i++) h = layer(ctx, c, encoding, i, h);
    const normed = rmsNorm(b, encoding, h, ctx.weight("model.norm.weight", [c.hidden], { kind: "gain" }), c.rmsEps);
    const head = c.tiedEmbeddings
      ? b.op.Transpose(embedding!, { perm: [1, 0] })
      : ctx.weight("lm_head.weight", [c.hidden, c.vocabSize], { kind: "uniform", std: 1 / Math.sqrt(c.hidden) });
    return b.op.MatMul(normed, head);
  });
}

export const EMBED_TOKENS_WEIGHT = "model.embed_tokens.weight";
export const EMBED_TOKENS_INIT = (c: LlamaConfig) => ({ kind: "uniform", std: 1 / Math.sqrt(c.hidden) }) as const;

function layer(ctx: DecoderContext, c: LlamaConfig, encoding: AttentionEncoding, i: number, h: Value): Value {
  const { b } = ctx;
  const prefix = `model.layers.${i}`;
  const kvWidth = c.kvHeads * headDim(c);
  const inStd = 1 / Math.sqrt(c.hidden);
  // Residual branches are scaled down with depth (as GPT-2's init does) so activations stay O(1).
  const residualStd = (fanIn: number) => 1 / Math.sqrt(fanIn * 2 * c.layers);
  const linear = (x: Value, name: string, dims: [number, number], std: number, bias = false) => {
    const y = b.op.MatMul(x, ctx.weight(`${prefix}.${name}.weight`, dims, { kind: "uniform", std }));
    return bias ? b.op.Add(y, ctx.weight(`${prefix}.${name}.bias`, [dims[1]], { kind: "uniform", std: 0.1 })) : y;
  };

  const x = rmsNorm(b, encoding, h, ctx.weight(`${prefix}.input_layernorm.weight`, [c.hidden], { kind: "gain" }), c.rmsEps);
  const q = linear(x, "self_attn.q_proj", [c.hidden, c.hidden], inStd, c.qkvBias);
  const k = linear(x, "self_attn.k_proj", [c.hidden, kvWidth], inStd, c.qkvBias);
  const v = linear(x, "self_attn.v_proj", [c.hidden, kvWidth], inStd, c.qkvBias);
  const attended = ctx.attend(i, { q, k, v });
  h = b.op.Add(h, linear(attended, "self_attn.o_proj", [c.hidden, c.hidden], residualStd(c.hidden)));

  const y = rmsNorm(b, encoding, h, ctx.weight(`${prefix}.post_attention_layernorm.weight`, [c.hidden], { kind: "gain" }), c.rmsEps);
  const gate = linear(y, "mlp.gate_proj", [c.hidden, c.intermediate], inStd);
  const up = linear(y, "mlp.up_proj", [c.hidden, c.intermediate], inStd);
  const silu = b.op.Mul(gate, b.op.Sigmoid(gate));
  return b.op.Add(h, linear(b.op.Mul(silu, up), "mlp.down_proj", [c.intermediate, c.hidden], residualStd(c.intermediate)));
}
