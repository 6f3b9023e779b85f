import type { Builder } from "../../graph/ir/builder.ts";
import { DataType } from "../../graph/ir/dtype.ts";
import type { Node } from "../../graph/ir/node.ts";
import type { Value } from "../../graph/ir/value.ts";
import type { Match, PatternBuilder, PatternValue, Rule } from "../../graph/rewrite/index.ts";
import { emitCanonical } from "./canonical-node.ts";
import { kvNames } from "./kv-names.ts";
import { checkPlan, planOf, type LiftPlan } from "./plan.ts";
import { dtypeOf, OpsetOps, shapeOf } from "./ops.ts";
import { type KeyLayout, peelHeadMerge, peelKey, peelNoOp, peelRepeatKv, peelScaleAndCasts, rank, scalarConstant } from "./peel.ts";
import { replayLayout } from "./rotary-embedding.ts";
import { peelScores, type ScoreMaskKind } from "./scores.ts";

export const DECOMPOSED_FORM = "decomposed";

interface DecomposedPlan extends LiftPlan {
  query_BHTD: Value;
  /** Layout steps (source side first) a scale on Q sat behind: Q is rebuilt as them applied to query_BHTD. */
  queryLayout: Node[];
  key: Value;
  keyLayout: KeyLayout;
  value_BHkvND: Value;
  mask?: { value: Value; kind: ScoreMaskKind; factorAfter: number };
  /** The block was written on [B*H, S, D] values; its output goes back to that layout. */
  headsMerged: boolean;
  opset: number;
}

const lastAxis = (axis: unknown) => axis === -1 || axis === 3 || `Softmax over axis ${String(axis)}, not the keys`;

/**
 * Spelled-out attention, rooted at the probabilities x V MatMul:
 *   MatMul(guard(Softmax(scores)), V)
 * guard: none, Where(IsNaN(p), 0, p), float Casts, or a Cast then the IsNaN guard. The check takes the rest apart by what it
 * computes (scores.ts, peel.ts): scores are MatMul(Q, K^T) with scales, float casts and one mask
 * (Add, or Where with a large negative fill) in any order; the scale may sit on Q, on K before or
 * after its transpose, or on the scores; K and V may be repeated for GQA.
 */
export const decomposedAttentionRule: Rule = {
  name: "lift-decomposed-attention",
  commute: true,
  pattern: (p) => {
    const softmax = p.op.Softmax(p.var("scores"), { axis: lastAxis }).as("probs");
    const probs = p.oneOf("guard", {
      isnan: guardNaN(p, softmax),
      castIsnan: guardNaN(p, p.op.Cast(softmax)),
      cast2: p.op.Cast(p.op.Cast(softmax)),
      cast: p.op.Cast(softmax),
      none: softmax,
    });
    return p.op.MatMul(probs, p.var("valueIn"));
  },
  check: checkPlan((ctx, m) => analyse(m, ctx.model?.opset("") ?? 21)),
  rewrite: (b: Builder, m: Match) => {
    const plan = planOf<DecomposedPlan>(m);
    const key_BHkvND = plan.keyLayout === "BNHD" ? b.op.Transpose(plan.key, { perm: [0, 2, 1, 3] }) : plan.key;
    const query_BHTD = plan.queryLayout.length > 0 ? replayLayout(b, plan.query_BHTD, plan.queryLayout) : plan.query_BHTD;
    const out_BHTD = emitCanonical(b, { query_BHTD, key_BHkvND, value_BHkvND: plan.value_BHkvND, mask: plan.mask && canonicalMask(b, plan.mask) }, plan.attrs);
    const out = plan.headsMerged ? mergeHeads(new OpsetOps(b, plan.opset), out_BHTD) : out_BHTD;
    // The block's output keeps its dtype where the exporter computed the probabilities in another precision.
    const outDtype = dtypeOf(m.root.outputs[0]);
    return outDtype !== undefined && outDtype !== dtypeOf(plan.query_BHTD) ? b.op.Cast(out, { to: outDtype }) : out;
  },
};

/** Where(IsNaN(p), 0, p): a guard against rows with no visible key. */
function guardNaN(p: PatternBuilder, probs: PatternValue): PatternValue {
  return p.op.Where(p.op.IsNaN(probs), p.constant("zero"), probs);
}

/** The canonical mask: true attends, or added after the scale (a scale applied after the mask scales it too). */
function canonicalMask(b: Builder, mask: NonNullable<DecomposedPlan["mask"]>): Value {
  if (mask.kind === "whereInverted") return b.op.Not(mask.value);
  if (mask.kind === "where" || mask.factorAfter === 1) return mask.value;
  return b.op.Mul(mask.value, b.float32(mask.factorAfter));
}

/** [B, H, T, D] -> [B*H, T, D]. */
function mergeHeads(ops: OpsetOps, out_BHTD: Value): Value {
  const b = ops.b;
  return b.op.Reshape(out_BHTD, b.op.Concat(b.int64([-1]), ops.dim(out_BHTD, 2), ops.dim(out_BHTD, 3), { axis: 0 }));
}

function analyse(m: Match, opset: number): DecomposedPlan | string {
  if (m.tags.guard?.endsWith("snan") && scalarConstant(m.values.zero) !== 0) return "the IsNaN guard does not replace NaN by 0";
  const scores = peelScores(m.values.scores!);
  if (typeof scores === "string") return scores;
  const [queryIn, keyT] = scores.qk.inputs as [Value, Value];
  const headsMerged = rank(queryIn) === 3;
  if (headsMerged && scores.mask && !perHeadFree(scores.mask.value)) return "the mask of 3-D attention may differ per batch and head";
  if (rank(queryIn) !== rank(keyT) || rank(queryIn) !== rank(m.values.valueIn!)) return "Q, K^T and V do not have the same rank";
  if (scores.mask?.kind === "add" && scores.mask.factorAfter !== 1 && dtypeOf(scores.mask.value) !== DataType.FLOAT) return "a float16 mask is scaled after it is added";

  const q = peelQuery(queryIn);
  if (typeof q === "string") return q;
  const k = peelKey(keyT);
  if (typeof k === "string") return k;
  const value = peelValue(m.values.valueIn!);
  if (typeof value === "string") return value;
  const scale = scores.factor * q.factor * k.factor;

  if (rank(q.query) !== 4) return `Q has rank ${rank(q.query) ?? "unknown"}, not 4 ([B, H, T, D])`;
  const heads = shapeOf(q.query)![1];
  if (typeof heads !== "number") return "the number of query heads (dim 1 of Q) is not known";
  if (rank(value) !== 4) return "V is not 4-D";
  const kvHeads = shapeOf(k.key)![k.layout === "BHND" ? 1 : 2];
  const valueHeads = shapeOf(value)![1];
  if (typeof kvHeads !== "number" || heads % kvHeads !== 0) return `K has ${String(kvHeads)} heads, not a divisor of ${heads}`;
  if (valueHeads !== kvHeads) return `V has ${String(valueHeads)} heads where K has ${kvHeads}`;
  const dtypes = new Set([dtypeOf(q.query), dtypeOf(k.key), dtypeOf(value)]);
  if (dtypes.size !== 1) return "Q, K and V differ in dtype";
  const attrs = {
    scale,
    num_heads: heads,
    kv_num_heads: kvHeads,
    softcap: scores.softcap,
    is_causal: 0,
    mask_kind: !scores.mask ? undefined : scores.mask.kind === "add" ? ("additive" as const) : ("boolean" as const),
    source_form: DECOMPOSED_FORM,
    ...kvNames(k.key, value),
  };
  return { attrs, query_BHTD: q.base, queryLayout: q.layout, key: k.key, keyLayout: k.layout, value_BHkvND: value, mask: scores.mask, headsMerged, opset };
}

/**
 * Q [B, H, T, D] under scales, no-op casts and a head merge; a scale further down, behind layout
 * steps (Q scaled as [B, T, H*D] before its head split), is peeled too, the steps to be replayed
 * on the unscaled value. `query` is Q as the block reads it (scales aside), for its shape.
 */
function peelQuery(queryIn: Value): { query: Value; base: Value; factor: number; layout: Node[] } | string {
  let factor = 1;
  let v = queryIn;
  for (;;) {
    const plain = peelScaleAndCasts(v);
    factor *= plain.factor;
    const merged = rank(plain.base) === 3 ? peelHeadMerge(plain.base) : undefined;
    if (merged) {
      v = merged;
      continue;
    }
    if (rank(queryIn) === 3 && rank(plain.base) === 3) return "Q is 3-D but not a reshape of a 4-D [B, H, T, D] value";
    const deeper = scaleBehindLayout(plain.base);
    return { query: plain.base, base: deeper?.base ?? plain.base, factor: factor * (deeper?.factor ?? 1), layout: deeper?.layout ?? [] };
  }
}

const LAYOUT_OPS = new Set(["Transpose", "Reshape", "Squeeze", "Unsqueeze", "Identity"]);

/** The scales under layout-only steps below `v`: the value under the deepest one, their product and the steps above it (source side first). */
function scaleBehindLayout(v: Value): { base: Value; factor: number; layout: Node[] } | undefined {
  const steps: Node[] = [];
  let factor = 1;
  let found: { base: Value; factor: number; layout: Node[] } | undefined;
  for (let depth = 0; depth < 16; depth++) {
    const p = v.producer;
    if (!p || p.domain !== "" || !LAYOUT_OPS.has(p.op)) break;
    steps.push(p);
    const plain = peelScaleAndCasts(p.inputs[0]!);
    if (plain.factor !== 1) {
      factor *= plain.factor;
      found = { base: plain.base, factor, layout: [...steps].reverse() };
    }
    v = plain.base;
  }
  return found;
}

/** V [B, Hkv, N, D] under no-op casts, a head merge and repeat-KV. */
function peelValue(valueIn: Value): Value | string {
  let v = peelNoOp(valueIn);
  if (rank(v) === 3) {
    const merged = peelHeadMerge(v);
    if (!merged) return "V is 3-D but not a reshape of a 4-D [B, H, N, D] value";
    v = peelNoOp(merged);
  }
  const base = peelRepeatKv(v);
  return typeof base === "string" ? base : peelNoOp(base);
}

/** A mask of 3-D attention is shared by all heads: at most 2-D, or [1, T, N]. */
function perHeadFree(mask: Value): boolean {
  const shape = shapeOf(mask);
  return !!shape && (shape.length < 3 || shape[0] === 1);
}
