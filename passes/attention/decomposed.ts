import type { Builder } from "../../compiler/ir/builder.ts";
import type { Value } from "../../compiler/ir/value.ts";
import type { Match, Rule, RuleContext } from "../../compiler/rewrite/index.ts";
import { emitCanonical } from "./canonical-node.ts";
import { kvNames } from "./kv-names.ts";
import { accept, planOf, type LiftPlan } from "./plan.ts";
import { dtypeOf, OpsetOps, shapeOf } from "./ops.ts";
import { peelHeadMerge, peelKeyTranspose, peelMergedKeyTranspose, peelRepeatKv, peelScale, rank, scalarConstant } from "./peel.ts";

export const DECOMPOSED_FORM = "decomposed";

interface DecomposedPlan extends LiftPlan {
  query_BHTD: Value;
  key: Value;
  keyLayout: "BHND" | "BNHD";
  value_BHkvND: Value;
  /** The block was written on [B*H, S, D] values; its output goes back to that layout. */
  headsMerged: boolean;
  opset: number;
}

const lastAxis = (axis: unknown) => axis === -1 || axis === 3 || `Softmax over axis ${String(axis)}, not the keys`;

/**
 * Spelled-out attention, rooted at the probabilities x V MatMul:
 *   MatMul(guard(Softmax(mask(scale(MatMul(Q, K^T))))), V)
 * scale: Mul or Div by a constant on the scores (or on Q or K, peeled in the check); mask: Add, or
 * Where with a large negative fill; guard: none, Where(IsNaN(p), 0, p) or no-op Casts.
 */
export const decomposedAttentionRule: Rule = {
  name: "lift-decomposed-attention",
  commute: true,
  pattern: (p) => {
    const qk = p.op.MatMul(p.var("queryIn"), p.var("keyT"));
    const scaled = p.oneOf("scale", { mul: p.op.Mul(qk, p.constant("factor")), div: p.op.Div(qk, p.constant("factor")), none: qk });
    const masked = p.oneOf("mask", {
      add: p.op.Add(scaled, p.var("mask")),
      where: p.op.Where(p.var("visible"), scaled, p.constant("fill")),
      whereInverted: p.op.Where(p.var("hidden"), p.constant("fill"), scaled),
      none: scaled,
    });
    const softmax = p.op.Softmax(masked, { axis: lastAxis }).as("probs");
    const probs = p.oneOf("guard", {
      isnan: p.op.Where(p.op.IsNaN(softmax), p.constant("zero"), softmax),
      cast2: p.op.Cast(p.op.Cast(softmax)),
      cast: p.op.Cast(softmax),
      none: softmax,
    });
    return p.op.MatMul(probs, p.var("valueIn"));
  },
  check: (ctx: RuleContext, m: Match) => {
    const plan = analyse(m, ctx.model?.opset("") ?? 21);
    return typeof plan === "string" ? plan : accept(m, plan);
  },
  rewrite: (b: Builder, m: Match) => {
    const plan = planOf<DecomposedPlan>(m);
    const key_BHkvND = plan.keyLayout === "BNHD" ? b.op.Transpose(plan.key, { perm: [0, 2, 1, 3] }) : plan.key;
    const mask = m.tags.mask === "add" ? m.values.mask : m.tags.mask === "where" ? m.values.visible : m.tags.mask === "whereInverted" ? b.op.Not(m.values.hidden!) : undefined;
    const out_BHTD = emitCanonical(b, { query_BHTD: plan.query_BHTD, key_BHkvND, value_BHkvND: plan.value_BHkvND, mask }, plan.attrs);
    if (!plan.headsMerged) return out_BHTD;
    const ops = new OpsetOps(b, plan.opset);
    return b.op.Reshape(out_BHTD, b.op.Concat(b.int64([-1]), ops.dim(out_BHTD, 2), ops.dim(out_BHTD, 3), { axis: 0 })); // [B*H, T, D]
  },
};

function analyse(m: Match, opset: number): DecomposedPlan | string {
  const dtype = dtypeOf(m.values.probs);
  if (m.tags.guard?.startsWith("cast") && dtypeOf(m.root.inputs[0]) !== dtype) return "the Cast after Softmax changes the dtype";
  if (m.tags.mask?.startsWith("where") && !((scalarConstant(m.values.fill) ?? 0) <= -1e4)) return "Where fills masked scores with something other than a large negative constant";
  if (m.tags.guard === "isnan" && scalarConstant(m.values.zero) !== 0) return "the IsNaN guard does not replace NaN by 0";

  let scale = 1;
  if (m.tags.scale !== "none") {
    const factor = scalarConstant(m.values.factor);
    if (factor === undefined) return "the scores are scaled by a constant that is not a scalar";
    scale = m.tags.scale === "mul" ? factor : 1 / factor;
  }
  const headsMerged = rank(m.values.queryIn!) === 3;
  const merged = headsMerged ? unmergeHeads(m) : { queryIn: m.values.queryIn!, valueIn: m.values.valueIn! };
  if (typeof merged === "string") return merged;
  const q = peelScale(merged.queryIn);
  const transposed = "key" in merged ? { key: merged.key, layout: "BHND" as const } : peelKeyTranspose(m.values.keyT!);
  if (typeof transposed === "string") return transposed;
  const k = peelScale(transposed.key);
  scale *= q.factor * k.factor;

  if (rank(q.base) !== 4) return `Q has rank ${rank(q.base) ?? "unknown"}, not 4 ([B, H, T, D])`;
  const heads = shapeOf(q.base)![1];
  if (typeof heads !== "number") return "the number of query heads (dim 1 of Q) is not known";

  const key = peelRepeatKv(k.base);
  if (typeof key === "string") return key;
  const value = peelRepeatKv(merged.valueIn);
  if (typeof value === "string") return value;
  if (rank(key) !== 4 || rank(value) !== 4) return "K or V is not 4-D";
  const kvHeads = shapeOf(key)![transposed.layout === "BHND" ? 1 : 2];
  const valueHeads = shapeOf(value)![1];
  if (typeof kvHeads !== "number" || heads % kvHeads !== 0) return `K has ${String(kvHeads)} heads, not a divisor of ${heads}`;
  if (valueHeads !== kvHeads) return `V has ${String(valueHeads)} heads where K has ${kvHeads}`;
  const attrs = {
    scale,
    num_heads: heads,
    kv_num_heads: kvHeads,
    is_causal: 0,
    mask_kind: m.tags.mask === "none" ? undefined : m.tags.mask === "add" ? ("additive" as const) : ("boolean" as const),
    source_form: DECOMPOSED_FORM,
    ...kvNames(key, value),
  };
  return { attrs, query_BHTD: q.base, key, keyLayout: transposed.layout, value_BHkvND: value, headsMerged, opset };
}

/** Attention on [B*H, S, D] values: Q, K and V as the 4-D values they were reshaped from. The mask must not vary per head. */
function unmergeHeads(m: Match): { queryIn: Value; key: Value; valueIn: Value } | string {
  const mask = m.values.mask ?? m.values.visible ?? m.values.hidden;
  const maskShape = shapeOf(mask);
  if (mask && !(maskShape && (maskShape.length < 3 || maskShape[0] === 1))) return "the mask of 3-D attention may differ per batch and head";
  const queryIn = peelHeadMerge(m.values.queryIn!, "Q");
  const key = peelMergedKeyTranspose(m.values.keyT!);
  const valueIn = peelHeadMerge(m.values.valueIn!, "V");
  for (const v of [queryIn, key, valueIn]) if (typeof v === "string") return v;
  return { queryIn: queryIn as Value, key: key as Value, valueIn: valueIn as Value };
}

