import type { Builder } from "../../graph/ir/builder.ts";
import { DataType } from "../../graph/ir/dtype.ts";
import type { Model } from "../../graph/ir/model.ts";
import type { Node } from "../../graph/ir/node.ts";
import { inferShapes } from "../../graph/ir/shape-inference/index.ts";
import type { Dim } from "../../graph/ir/types.ts";
import type { Value } from "../../graph/ir/value.ts";
import { TOPOLOGICALLY_SORTED } from "../../graph/pass-manager/properties.ts";
import type { Pass, PassResult } from "../../graph/pass-manager/pass.ts";
import { applyRules, type Match, type Rule } from "../../graph/rewrite/index.ts";
import { CANONICAL_DOMAIN, CANONICAL_OP } from "./canonical.ts";
import { readCanonical } from "./canonical-node.ts";
import { capScores, dtypeOf, lowestOf, OpsetOps, shapeOf } from "./ops.ts";

export const LOWER_ATTENTION = "lower-attention";

/**
 * Replaces every canonical attention node by MatMul / Softmax / MatMul that stock onnxruntime
 * runs: K and V are repeated to H heads (Unsqueeze/Expand/Reshape), the causal mask is built
 * from the runtime lengths, float16 is computed in float32 as onnxruntime's fused kernels do.
 */
export function createLowerAttention(): Pass {
  return {
    name: LOWER_ATTENTION,
    description: "lower canonical pipec::Attention nodes to standard MatMul/Softmax attention",
    // New nodes go before the block's last node, after everything they read.
    preserves: [TOPOLOGICALLY_SORTED],
    run(model: Model): PassResult {
      const lowered = lowerAttention(model);
      return { changed: lowered > 0, stats: { lowered } };
    },
  };
}

/** Lowers every canonical node in the main graph; returns how many there were. */
export function lowerAttention(model: Model): number {
  inferShapes(model); // the dtype of each block's Q decides float16 handling
  const stats = applyRules(model, [lowerRule(model.opset("") ?? 1)], { subgraphs: false });
  model.opsets.delete(CANONICAL_DOMAIN);
  return stats.rewrites;
}

/** The lowering as a rewrite rule, so graph outputs keep their names and nodes their provenance. */
function lowerRule(opset: number): Rule {
  return {
    name: LOWER_ATTENTION,
    pattern: (p) => p.node(CANONICAL_OP, [p.var("query"), p.var("key"), p.var("value")], { domain: CANONICAL_DOMAIN, otherInputs: true }).outputs[0]!,
    rewrite: (b: Builder, m: Match) => lowerOne(new OpsetOps(b, opset), m.root),
  };
}

function lowerOne(ops: OpsetOps, node: Node): Value {
  const b = ops.b;
  const attrs = readCanonical(node);
  const [q, k, v, mask] = node.inputs;
  const dtype = dtypeOf(q) ?? DataType.FLOAT;
  const half = dtype === DataType.FLOAT16;
  const widen = (x: Value) => (half ? b.op.Cast(x, { to: DataType.FLOAT }) : x);
  const query_BHTD = widen(q!);
  const key_BHND = repeatKv(ops, widen(k!), attrs.num_heads, attrs.kv_num_heads, shapeOf(k)?.[3]);
  const value_BHND = repeatKv(ops, widen(v!), attrs.num_heads, attrs.kv_num_heads, shapeOf(v)?.[3]);

  let scores_BHTN = b.op.MatMul(query_BHTD, b.op.Transpose(key_BHND, { perm: [0, 1, 3, 2] }));
  if (attrs.scale !== 1) scores_BHTN = b.op.Mul(scores_BHTN, b.float32(attrs.scale));
  if (attrs.softcap) scores_BHTN = capScores(b, scores_BHTN, attrs.softcap);
  const lowest = () => b.float32(lowestOf(dtype));
  if (mask && attrs.mask_kind === "boolean") scores_BHTN = b.op.Where(mask, scores_BHTN, lowest());
  else if (mask) scores_BHTN = b.op.Add(scores_BHTN, half ? b.op.Cast(mask, { to: DataType.FLOAT }) : mask);
  if (attrs.is_causal) scores_BHTN = b.op.Where(causalVisibility(ops, query_BHTD, key_BHND), scores_BHTN, lowest());

  const probs_BHTN = b.op.Softmax(scores_BHTN, { axis: -1 });
  const out_BHTD = b.op.MatMul(probs_BHTN, value_BHND);
  return half ? b.op.Cast(out_BHTD, { to: DataType.FLOAT16 }) : out_BHTD;
}

/**
 * [B, Hkv, N, D] -> [B, H, N, D]: KV head j serves query heads j*G .. j*G+G-1. With D known the
 * target shape is a constant [0 (B), H, -1 (N), D]: reading it from Shape nodes costs three Shape
 * and a Concat per K and V per layer on every step, a measurable share of a small model's decode step.
 */
function repeatKv(ops: OpsetOps, x_BHkvND: Value, heads: number, kvHeads: number, headSize: Dim | undefined): Value {
  if (heads === kvHeads) return x_BHkvND;
  const b = ops.b;
  const groups = heads / kvHeads;
  const expanded = b.op.Expand(ops.unsqueeze(x_BHkvND, [2]), b.int64([1, 1, groups, 1, 1])); // [B, Hkv, G, N, D]
  const target =
    typeof headSize === "number"
      ? b.int64([0, heads, -1, headSize])
      : b.op.Concat(ops.dim(x_BHkvND, 0), b.int64([heads]), ops.dim(x_BHkvND, 2), ops.dim(x_BHkvND, 3), { axis: 0 });
  return b.op.Reshape(expanded, target);
}

/** bool [T, N]: query t (at absolute position N - T + t) sees key n when n <= N - T + t. */
function causalVisibility(ops: OpsetOps, query_BHTD: Value, key_BHND: Value): Value {
  const b = ops.b;
  const scalar = (x: Value) => b.op.Reshape(x, b.int64([], [0]));
  const t = scalar(ops.dim(query_BHTD, 2));
  const n = scalar(ops.dim(key_BHND, 2));
  const zero = b.int64(0);
  const one = b.int64(1);
  const lastVisible_T = b.op.Add(b.op.Range(zero, t, one), b.op.Sub(n, t)); // [T]
  const keys_N = b.op.Range(zero, n, one);
  return b.op.Not(b.op.Greater(ops.unsqueeze(keys_N, [0]), ops.unsqueeze(lastVisible_T, [1]))); // LessOrEqual needs opset 12
}
