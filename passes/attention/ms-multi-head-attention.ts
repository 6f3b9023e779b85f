import type { Builder } from "../../graph/ir/builder.ts";
import type { Match, Rule, RuleContext } from "../../graph/rewrite/index.ts";
import { extraInputs, liftFused } from "./fused.ts";
import type { Node } from "../../graph/ir/node.ts";
import type { Value } from "../../graph/ir/value.ts";
import { fusedKvNames, kvNames } from "./kv-names.ts";
import { peelPackedHeads } from "./peel.ts";
import { OpsetOps, shapeOf } from "./ops.ts";
import { checkPlan, planOf, type LiftPlan } from "./plan.ts";

export const MS_MULTI_HEAD_ATTENTION_FORM = "com.microsoft.MultiHeadAttention";

interface MhaPlan extends LiftPlan {
  opset: number;
  /** K and V [B, H, N, D] when the op reads a cache grown outside it, packed to [B, N, H*D]. */
  cache?: { key: Value; value: Value };
}

/**
 * com.microsoft MultiHeadAttention in its self-attention form: query/key/value [B, S, H*D],
 * an additive attention_bias, past_key/past_value [B, H, P, D] grown along the sequence (or a
 * cache grown outside the op, packed to [B, N, H*D] for it: lifted as that cache).
 */
export const msMultiHeadAttentionRule: Rule = {
  name: "lift-ms-multi-head-attention",
  pattern: (p) => p.node("MultiHeadAttention", [p.var("query"), p.var("key"), p.var("value")], { domain: "com.microsoft", otherInputs: true }).outputs[0]!,
  check: checkPlan(analyse),
  rewrite: (b: Builder, m: Match) => {
    const plan = planOf<MhaPlan>(m);
    const ops = new OpsetOps(b, plan.opset);
    const [, , , , , attentionBias, pastKey, pastValue] = m.root.inputs;
    const { num_heads: heads } = plan.attrs;
    const { out_BHSD, presentKey, presentValue } = liftFused(
      ops,
      {
        query_BHSD: ops.toHeads(m.values.query!, heads),
        newKey_BHkvSD: plan.cache?.key ?? ops.toHeads(m.values.key!, heads),
        newValue_BHkvSD: plan.cache?.value ?? ops.toHeads(m.values.value!, heads),
        pastKey_BHkvPD: pastKey,
        pastValue_BHkvPD: pastValue,
        mask: attentionBias,
      },
      plan.attrs,
    );
    return [ops.fromHeads(out_BHSD), presentKey, presentValue];
  },
};

function analyse(ctx: RuleContext, m: Match): MhaPlan | string {
  const node = m.root;
  if (node.inputs[3]) return `${node.describe()} adds a packed QKV bias, which lift-attention does not model`;
  if (node.inputs[4]) return `${node.describe()} uses key_padding_mask, which lift-attention does not model`;
  const extra = extraInputs(node, 8, ["past_sequence_length", "cache_indirection"]);
  if (extra) return extra;
  const rankOf = (v: typeof node.inputs[0]) => shapeOf(v)?.length;
  if (rankOf(m.values.query) !== 3 || rankOf(m.values.key) !== 3) return `${node.describe()} is not in the [B, S, H*D] self-attention layout`;
  const heads = node.attrInt("num_heads")!;
  const hidden = shapeOf(m.values.query)![2];
  const scale = node.attrFloat("scale") ?? (typeof hidden === "number" ? 1 / Math.sqrt(hidden / heads) : undefined);
  if (scale === undefined) return `${node.describe()} has no scale and its head size is not known`;
  const cache = outsideCache(node, m.values.key!, m.values.value!, heads);
  const attrs = {
    scale,
    num_heads: heads,
    kv_num_heads: heads,
    is_causal: node.attrInt("unidirectional", 0),
    mask_kind: node.inputs[5] ? ("additive" as const) : undefined,
    source_form: MS_MULTI_HEAD_ATTENTION_FORM,
    ...(cache
      ? kvNames(cache.key, cache.value)
      : fusedKvNames({ pastKey: node.inputs[6], pastValue: node.inputs[7], presentKey: node.outputs[1], presentValue: node.outputs[2] })),
  };
  return { attrs, opset: ctx.model?.opset("") ?? 21, cache };
}

/** An op without cache I/O of its own whose K and V are a [B, H, N, D] cache packed for it: that cache. */
function outsideCache(node: Node, key: Value, value: Value, heads: number): { key: Value; value: Value } | undefined {
  if (node.inputs[6] || node.inputs[7] || [node.outputs[1], node.outputs[2]].some((o) => o && !o.unused)) return undefined;
  const [k, v] = [peelPackedHeads(key, heads), peelPackedHeads(value, heads)];
  return k && v ? { key: k, value: v } : undefined;
}
