import type { Builder } from "../../graph/ir/builder.ts";
import { DataType } from "../../graph/ir/dtype.ts";
import type { Value } from "../../graph/ir/value.ts";
import type { Match, Rule, RuleContext } from "../../graph/rewrite/index.ts";
import { extraInputs, keysBelow, liftFused } from "./fused.ts";
import { fusedKvNames } from "./kv-names.ts";
import { OpsetOps, shapeOf } from "./ops.ts";
import { checkPlan, planOf, type LiftPlan } from "./plan.ts";
import { gatherRows, rotate } from "./rotary.ts";

export const MS_GROUP_QUERY_ATTENTION_FORM = "com.microsoft.GroupQueryAttention";

interface GqaPlan extends LiftPlan {
  opset: number;
  /** D/2 when the op rotates Q and K itself (do_rotary), else undefined. */
  rotaryHalfDim: number | undefined;
  interleaved: boolean;
  /** The past is a fixed-length buffer (its sequence dim is a number): new rows are written into it. */
  buffered: boolean;
  /** D when query packs Q, K and V ([B, S, (H + 2*Hkv)*D], key and value omitted). */
  packedHeadDim: number | undefined;
}

/**
 * com.microsoft GroupQueryAttention: query [B, S, H*D], key/value [B, S, Hkv*D] (or all three
 * packed in query, key and value omitted), the past
 * [B, Hkv, P, D] either growing (P symbolic: present = Concat) or a fixed-length buffer (P a
 * number: new rows written in place), seqlens_k (valid keys - 1 per row), optionally rotary.
 * Lifted with rotary at the positions onnxruntime derives (row b, token s: s + max(0,
 * seqlens_k[b] + 1 - S)), keys past seqlens_k masked, causal bottom-right.
 */
export const msGroupQueryAttentionRule: Rule = {
  name: "lift-ms-group-query-attention",
  // key and value are omitted when query packs Q, K and V; the rest is read off the node.
  pattern: (p) => p.node("GroupQueryAttention", [p.var("query")], { domain: "com.microsoft", otherInputs: true }).outputs[0]!,
  check: checkPlan(analyse),
  rewrite: (b: Builder, m: Match) => {
    const plan = planOf<GqaPlan>(m);
    const ops = new OpsetOps(b, plan.opset);
    const { num_heads: heads, kv_num_heads: kvHeads } = plan.attrs;
    const [packed, separateKey, separateValue, pastKey, pastValue, seqlensK] = m.root.inputs as Value[];
    const [query, key, value] = plan.packedHeadDim
      ? ops.split(packed!, 2, [heads * plan.packedHeadDim, kvHeads * plan.packedHeadDim, kvHeads * plan.packedHeadDim])
      : [packed!, separateKey!, separateValue!];
    const v = { query, pastKey, pastValue };
    const validKeys_B = b.op.Add(b.op.Cast(seqlensK!, { to: DataType.INT64 }), b.int64(1));
    const offset_B = pastLengths(ops, v.query!, validKeys_B);
    let query_BHSD = ops.toHeads(v.query!, heads);
    let newKey_BHkvSD = ops.toHeads(key!, kvHeads);
    if (plan.rotaryHalfDim !== undefined) {
      const positions_BS = b.op.Add(ops.unsqueeze(offset_B, [1]), ops.unsqueeze(tokenIndices(ops, v.query!), [0]));
      const [cosCache, sinCache] = [m.root.inputs[7]!, m.root.inputs[8]!];
      const cos = gatherRows(ops, cosCache, positions_BS);
      const sin = gatherRows(ops, sinCache, positions_BS);
      query_BHSD = rotate(ops, query_BHSD, cos, sin, plan.rotaryHalfDim, plan.interleaved);
      newKey_BHkvSD = rotate(ops, newKey_BHkvSD, cos, sin, plan.rotaryHalfDim, plan.interleaved);
    }
    const { out_BHSD, presentKey, presentValue } = liftFused(
      ops,
      {
        query_BHSD,
        newKey_BHkvSD,
        newValue_BHkvSD: ops.toHeads(value!, kvHeads),
        pastKey_BHkvPD: v.pastKey,
        pastValue_BHkvPD: v.pastValue,
        writeCache: plan.buffered ? (past, now) => writeAtOffsets(ops, past, now, offset_B, v.query!) : undefined,
        mask: (presentKey_BHkvND) =>
          plan.buffered ? visibleInBuffer(ops, presentKey_BHkvND, offset_B, v.query!, validKeys_B) : keysBelow(ops, presentKey_BHkvND, validKeys_B),
      },
      plan.attrs,
    );
    return [ops.fromHeads(out_BHSD), presentKey, presentValue];
  },
};

/**
 * How many cached keys precede row b's new tokens, as onnxruntime's GQA derives it: validKeys[b] - S,
 * or 0 for a first prompt (right padding makes validKeys smaller than S there). Token s of row b
 * then sits at position offset[b] + s.
 */
function pastLengths(ops: OpsetOps, query_BSX: Value, validKeys_B: Value): Value {
  const b = ops.b;
  const s = b.op.Reshape(ops.dim(query_BSX, 1), b.int64([], [0]));
  return b.op.Max(b.op.Sub(validKeys_B, s), b.int64(0));
}

/** 0 .. S-1, the new tokens' indices. */
function tokenIndices(ops: OpsetOps, query_BSX: Value): Value {
  const b = ops.b;
  return b.op.Range(b.int64(0), b.op.Reshape(ops.dim(query_BSX, 1), b.int64([], [0])), b.int64(1));
}

/** A fixed-length cache buffer with row b's new entries written at offset[b] .. offset[b] + S - 1. */
function writeAtOffsets(ops: OpsetOps, buffer_BHkvMD: Value, new_BHkvSD: Value, offset_B: Value, query_BSX: Value): Value {
  const b = ops.b;
  const rows_B111 = b.op.Reshape(offset_B, b.int64([-1, 1, 1, 1]));
  const tokens_11S1 = b.op.Reshape(tokenIndices(ops, query_BSX), b.int64([1, 1, -1, 1]));
  const indices_BHkvSD = b.op.Expand(b.op.Add(rows_B111, tokens_11S1), b.op.Shape(new_BHkvSD));
  return b.op.ScatterElements(buffer_BHkvMD, indices_BHkvSD, new_BHkvSD, { axis: 2 });
}

/**
 * bool [B, 1, S, N] for a buffer whose new rows sit at offset[b] + s rather than at the end:
 * token s of row b sees key n when n <= offset[b] + s and n is one of the row's valid keys.
 */
function visibleInBuffer(ops: OpsetOps, buffer_BHkvND: Value, offset_B: Value, query_BSX: Value, validKeys_B: Value): Value {
  const b = ops.b;
  const n = b.op.Reshape(ops.dim(buffer_BHkvND, 2), b.int64([], [0]));
  const keys_111N = b.op.Reshape(b.op.Range(b.int64(0), n, b.int64(1)), b.int64([1, 1, 1, -1]));
  const last_B1S1 = b.op.Add(b.op.Reshape(offset_B, b.int64([-1, 1, 1, 1])), b.op.Reshape(tokenIndices(ops, query_BSX), b.int64([1, 1, -1, 1])));
  const causal = b.op.Not(b.op.Greater(keys_111N, last_B1S1));
  return b.op.And(causal, b.op.Less(keys_111N, b.op.Reshape(validKeys_B, b.int64([-1, 1, 1, 1]))));
}

function analyse(ctx: RuleContext, m: Match): GqaPlan | string {
  const node = m.root;
  const extra = extraInputs(node, 9, ["position_ids", "attention_bias", "head_sink"]);
  if (extra) return extra;
  if ((node.attrInt("local_window_size") ?? -1) !== -1) return `${node.describe()} uses a local window`;
  if ((node.attrFloat("softcap") ?? 0) !== 0) return `${node.describe()} caps the scores (softcap)`;
  if (node.attrInt("smooth_softmax", 0)) return `${node.describe()} uses smooth softmax`;
  const [query, key, value, pastKey, pastValue, seqlensK] = node.inputs;
  if (!pastKey || !pastValue || !seqlensK) return `${node.describe()} has no past_key, past_value or seqlens_k`;
  if (!key !== !value) return `${node.describe()} has only one of key and value`;
  if (shapeOf(query)?.length !== 3) return `${node.describe()} query is not [B, S, H*D] or packed [B, S, (H + 2*Hkv)*D]`;
  const heads = node.attrInt("num_heads")!;
  const kvHeads = node.attrInt("kv_num_heads")!;
  const hidden = shapeOf(query)![2];
  const cosWidth = shapeOf(node.inputs[7])?.[1];
  const packed = !key;
  const headDim = typeof hidden === "number" ? hidden / (packed ? heads + 2 * kvHeads : heads) : typeof cosWidth === "number" ? cosWidth * 2 : undefined;
  if (packed && (headDim === undefined || !Number.isInteger(headDim))) return `${node.describe()} packs Q, K and V but its head size is not known`;
  const doRotary = node.attrInt("do_rotary", 0) === 1;
  if (doRotary && (typeof cosWidth !== "number" || !node.inputs[8])) return `${node.describe()} rotates but its cos/sin cache shape is not known`;
  if (doRotary && headDim !== undefined && cosWidth !== headDim / 2) return `${node.describe()} rotates only part of each head (partial rotary is not modelled)`;
  const scale = node.attrFloat("scale") || (headDim ? 1 / Math.sqrt(headDim) : undefined);
  if (scale === undefined) return `${node.describe()} has no scale and its head size is not known`;
  // A growing cache puts the new tokens last, where canonical causality expects them; in a
  // fixed-length buffer they sit mid-buffer, so causality goes into the mask instead.
  const buffered = typeof shapeOf(pastKey)?.[2] === "number";
  const attrs = {
    scale,
    num_heads: heads,
    kv_num_heads: kvHeads,
    is_causal: buffered ? 0 : 1,
    mask_kind: "boolean" as const,
    source_form: MS_GROUP_QUERY_ATTENTION_FORM,
    ...fusedKvNames({ pastKey: node.inputs[3], pastValue: node.inputs[4], presentKey: node.outputs[1], presentValue: node.outputs[2] }),
  };
  return {
    attrs,
    opset: ctx.model?.opset("") ?? 21,
    rotaryHalfDim: doRotary ? (cosWidth as number) : undefined,
    interleaved: node.attrInt("rotary_interleaved", 0) === 1,
    buffered,
    packedHeadDim: packed ? headDim : undefined,
  };
}
