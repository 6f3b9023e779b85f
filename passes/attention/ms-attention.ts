import type { Builder } from "../../graph/ir/builder.ts";
import { DataType } from "../../graph/ir/dtype.ts";
import type { Match, Rule, RuleContext } from "../../graph/rewrite/index.ts";
import { extraInputs, liftFused } from "./fused.ts";
import { fusedKvNames } from "./kv-names.ts";
import { OpsetOps, shapeOf } from "./ops.ts";
import { checkPlan, planOf, type LiftPlan } from "./plan.ts";

export const MS_ATTENTION_FORM = "com.microsoft.Attention";

interface MsAttentionPlan extends LiftPlan {
  opset: number;
  hidden: number;
}

/**
 * com.microsoft Attention as GPT-2 exports use it: the QKV projection packed in (weights
 * [hidden, 3*hidden], bias), a raw 0/1 mask [B, T], K and V cached together as past/present
 * [2, B, H, P, D], `unidirectional` for causal.
 */
export const msAttentionRule: Rule = {
  name: "lift-ms-attention",
  pattern: (p) =>
    p.node("Attention", [p.var("input"), p.constant("weights"), p.constant("bias")], { domain: "com.microsoft", otherInputs: true }).outputs[0]!,
  check: checkPlan(analyse),
  rewrite: (b: Builder, m: Match) => {
    const plan = planOf<MsAttentionPlan>(m);
    const ops = new OpsetOps(b, plan.opset);
    const [, , , maskIndex, past] = m.root.inputs;
    const heads = plan.attrs.num_heads;
    const qkv = b.op.Add(b.op.MatMul(m.values.input!, m.values.weights!), m.values.bias!); // [B, S, 3*hidden]
    const [q, k, v] = ops.split(qkv, 2, [plan.hidden, plan.hidden, plan.hidden]);
    const cached = (i: number) => (past ? b.op.Gather(past, b.int64(i), { axis: 0 }) : undefined);
    const { out_BHSD, presentKey, presentValue } = liftFused(
      ops,
      {
        query_BHSD: ops.toHeads(q!, heads),
        newKey_BHkvSD: ops.toHeads(k!, heads),
        newValue_BHkvSD: ops.toHeads(v!, heads),
        pastKey_BHkvPD: cached(0),
        pastValue_BHkvPD: cached(1),
        mask: maskIndex && ops.unsqueeze(b.op.Cast(maskIndex, { to: DataType.BOOL }), [1, 2]),
      },
      plan.attrs,
    );
    const present = b.op.Concat(ops.unsqueeze(presentKey, [0]), ops.unsqueeze(presentValue, [0]), { axis: 0 });
    return [ops.fromHeads(out_BHSD), present];
  },
};

function analyse(ctx: RuleContext, m: Match): MsAttentionPlan | string {
  const node = m.root;
  const extra = extraInputs(node, 5, ["attention_bias", "past_sequence_length"]);
  if (extra) return extra;
  const sizes = node.attrInts("qkv_hidden_sizes");
  if (sizes && new Set(sizes).size > 1) return `${node.describe()} has unequal qkv_hidden_sizes`;
  for (const attr of ["do_rotary", "past_present_share_buffer"]) {
    if (node.attrInt(attr, 0) !== 0) return `${node.describe()} uses ${attr}, which lift-attention does not model`;
  }
  const maskIndex = node.inputs[3];
  if (maskIndex && shapeOf(maskIndex)?.length !== 2) return `${node.describe()} mask_index is not a raw [B, T] mask`;
  const [hidden, packed] = m.tensor("weights").dims;
  if (hidden === undefined || packed !== 3 * hidden) return `${node.describe()} weights are not [hidden, 3*hidden]`;
  const heads = node.attrInt("num_heads")!;
  const attrs = {
    scale: node.attrFloat("scale") || 1 / Math.sqrt(hidden / heads),
    num_heads: heads,
    kv_num_heads: heads,
    is_causal: node.attrInt("unidirectional", 0),
    mask_kind: maskIndex ? ("boolean" as const) : undefined,
    source_form: MS_ATTENTION_FORM,
    ...fusedKvNames({ pastKey: node.inputs[4], pastValue: node.inputs[4], presentKey: node.outputs[1], presentValue: node.outputs[1] }),
  };
  return { attrs, opset: ctx.model?.opset("") ?? 11, hidden };
}
