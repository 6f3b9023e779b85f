import type { Builder } from "../../graph/ir/builder.ts";
import { DataType } from "../../graph/ir/dtype.ts";
import type { Value } from "../../graph/ir/value.ts";
import type { Match, Rule, RuleContext } from "../../graph/rewrite/index.ts";
import { keysBelow, liftFused } from "./fused.ts";
import { fusedKvNames, kvNames } from "./kv-names.ts";
import { peelRepeatKv } from "./peel.ts";
import { dtypeOf, lowestOf, OpsetOps, shapeOf } from "./ops.ts";
import { checkPlan, planOf, type LiftPlan } from "./plan.ts";

export const ONNX_ATTENTION_FORM = "ai.onnx.Attention";

interface OnnxAttentionPlan extends LiftPlan {
  /** Q/K/V are [B, S, heads*D] (else [B, heads, S, D]). */
  packedHeads: boolean;
  /** K and V before the repeat to the query heads that the exporter put in front of the op. */
  key: Value;
  value: Value;
  opset: number;
}

/**
 * Standard Attention-23/24: Q, K, V (3-D with q_num_heads/kv_num_heads, or 4-D), optional
 * attn_mask (bool: true attends; float: added), past_key/past_value grown along the sequence,
 * nonpad_kv_seqlen (Attention-24: keys at or past it per row are padding).
 */
export const onnxAttentionRule: Rule = {
  name: "lift-onnx-attention",
  pattern: (p) => p.node("Attention", [p.var("q"), p.var("k"), p.var("v")], { otherInputs: true }).outputs[0]!,
  check: checkPlan(analyse),
  rewrite: (b: Builder, m: Match) => {
    const plan = planOf<OnnxAttentionPlan>(m);
    const node = m.root;
    const ops = new OpsetOps(b, plan.opset);
    const heads = (x: typeof node.inputs[0], n: number) => (plan.packedHeads ? ops.toHeads(x!, n) : x!);
    const [, , , mask, pastKey, pastValue, nonpadKvSeqlen] = node.inputs;
    const { out_BHSD, presentKey, presentValue } = liftFused(
      ops,
      {
        query_BHSD: heads(m.values.q, plan.attrs.num_heads),
        newKey_BHkvSD: heads(plan.key, plan.attrs.kv_num_heads),
        newValue_BHkvSD: heads(plan.value, plan.attrs.kv_num_heads),
        pastKey_BHkvPD: pastKey,
        pastValue_BHkvPD: pastValue,
        mask: nonpadKvSeqlen ? (key_BHkvND) => withNonpadKeys(ops, mask, keysBelow(ops, key_BHkvND, nonpadKvSeqlen)) : mask,
      },
      plan.attrs,
    );
    return [plan.packedHeads ? ops.fromHeads(out_BHSD) : out_BHSD, presentKey, presentValue];
  },
};

/** attn_mask restricted to the keys nonpad_kv_seqlen counts as real. */
function withNonpadKeys(ops: OpsetOps, mask: Value | undefined, nonpad_B11N: Value): Value {
  const b = ops.b;
  if (!mask) return nonpad_B11N;
  if (dtypeOf(mask) === DataType.BOOL) return b.op.And(mask, nonpad_B11N);
  const dtype = dtypeOf(mask) ?? DataType.FLOAT;
  const hide = b.op.Where(nonpad_B11N, b.float32(0), b.float32(lowestOf(dtype)));
  return b.op.Add(mask, dtype === DataType.FLOAT ? hide : b.op.Cast(hide, { to: dtype }));
}

/**
 * K and V as the cache holds them: an exporter that grows the cache itself (no past inputs) may
 * repeat K/V to the query heads before the op (the dynamo exporter for GQA); the op then sees H
 * KV heads, but the cache, and the canonical form, has Hkv.
 */
function unrepeatedKv(growsCache: boolean, k: Value, v: Value): [Value, Value] | string {
  if (growsCache) return [k, v];
  const [key, value] = [peelRepeatKv(k), peelRepeatKv(v)];
  if (typeof key === "string") return key;
  if (typeof value === "string") return value;
  return (key === k) === (value === v) ? [key, value] : "only one of K and V is repeated to the query heads";
}

function analyse(ctx: RuleContext, m: Match): OnnxAttentionPlan | string {
  const node = m.root;
  if (node.outputs[3] && !node.outputs[3].unused) return `${node.describe()} exposes qk_matmul_output`;
  if ((node.attrFloat("softcap") ?? 0) !== 0) return `${node.describe()} caps the scores (softcap)`;
  const shape = shapeOf(m.values.q);
  const packedHeads = shape ? shape.length === 3 : node.attrInt("q_num_heads") !== undefined;
  let heads: number | undefined;
  let kvHeads: number | undefined;
  let headDim: number | undefined;
  let [key, value] = [m.values.k!, m.values.v!];
  // Without its own past inputs or present outputs the op reads a cache grown outside it.
  const growsCache = node.inputs[4] !== undefined || [node.outputs[1], node.outputs[2]].some((o) => o && !o.unused);
  if (packedHeads) {
    heads = node.attrInt("q_num_heads");
    kvHeads = node.attrInt("kv_num_heads");
    const hidden = shape?.[2];
    headDim = typeof hidden === "number" && heads ? hidden / heads : undefined;
  } else {
    const unrepeated = unrepeatedKv(growsCache, m.values.k!, m.values.v!);
    if (typeof unrepeated === "string") return unrepeated;
    [key, value] = unrepeated;
    const kShape = shapeOf(key);
    heads = typeof shape?.[1] === "number" ? shape[1] : undefined;
    kvHeads = typeof kShape?.[1] === "number" ? kShape[1] : undefined;
    headDim = typeof shape?.[3] === "number" ? shape[3] : undefined;
  }
  if (!heads || !kvHeads) return `the head counts of ${node.describe()} are not known`;
  const scale = node.attrFloat("scale") ?? (headDim ? 1 / Math.sqrt(headDim) : undefined);
  if (scale === undefined) return `${node.describe()} has no scale and its head size is not known`;
  const causal = node.attrInt("is_causal", 0);
  // With a past, onnxruntime aligns the causal mask bottom-right as the canonical form does
  // (onnx-attention.test.ts checks it against a decode step).
  const mask = node.inputs[3];
  const attrs = {
    scale,
    num_heads: heads,
    kv_num_heads: kvHeads,
    is_causal: causal,
    mask_kind: mask ? (dtypeOf(mask) === DataType.BOOL ? ("boolean" as const) : ("additive" as const)) : node.inputs[6] ? ("boolean" as const) : undefined,
    source_form: ONNX_ATTENTION_FORM,
    ...(!growsCache
      ? kvNames(key, value)
      : fusedKvNames({ pastKey: node.inputs[4], pastValue: node.inputs[5], presentKey: node.outputs[1], presentValue: node.outputs[2] })),
  };
  return { attrs, packedHeads, key, value, opset: ctx.model?.opset("") ?? 23 };
}
