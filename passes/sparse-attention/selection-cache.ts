import { PipecError } from "../../graph/errors.ts";
import { DataType } from "../../graph/ir/dtype.ts";
import { Graph } from "../../graph/ir/graph.ts";
import type { Model } from "../../graph/ir/model.ts";
import { tensorType } from "../../graph/ir/types.ts";
import type { Value } from "../../graph/ir/value.ts";
import { dtypeOf } from "../attention/ops.ts";
import { unrotatedSource } from "../attention/rotary-embedding.ts";
import { selectionCacheName } from "../../runtime/contract-names.ts";
import type { SparseSite } from "./site.ts";

/**
 * The selection cache's contract (names in runtime/contract-names.ts), per layer {i}:
 *   input  tokenselect_cached_fingerprint.{i}  float32 [H*D]  the fingerprint the indices were chosen for (zeros: none)
 *   input  tokenselect_cached_indices.{i}      int64 [C]      the middle rows chosen then (past rows, not the sinks or the window)
 *   output tokenselect_fingerprint.{i}         float32 [H*D]  the fingerprint to keep (the cached one when reused)
 *   output tokenselect_indices.{i}             int64 [C]      the middle rows this step attended (to keep)
 *   output tokenselect_reused.{i}              bool [1]       whether the cached indices were used
 * The model decides reuse itself (cosine >= threshold, one query, a cached fingerprint), so the
 * threshold is compiled in and the runtime only carries state. The vote runs in an If branch
 * taken only when the cache is not used: skipping it is the point. A reused step attends the
 * cached middle rows with its own sinks and window, so it attends as many keys as a fresh one
 * (the budget holds however long a selection is reused).
 */
/**
 * Which query the fingerprint is made of. "unrotated" (the default): the query before its rotary
 * embedding, as QUERY_ROTATE in TokenSelect's released code amounts to (it rotates every query to the same
 * positions, which leaves cosines as between the un-rotated queries), so consecutive queries are
 * not kept apart by one RoPE step each; "rotated": the attention's own query, at its position
 * (kept to measure what un-rotating gains).
 */
export type FingerprintQuery = "unrotated" | "rotated";

/**
 * How a layer's fingerprint was made: from the un-rotated query, from the query itself because
 * the model has no rotary there, or from the rotated query with the reason the rotary could not
 * be traced (or because "rotated" was asked for).
 */
export type FingerprintSource = { kind: "unrotated" | "no-rotary" } | { kind: "rotated"; reason: string };

/**
 * What the If's branches build: the kept rows (int64 [K]) and, when `scoresOf` is given, their
 * attention scores [B, Hkv, G*T, K] (q.K^T, unscaled): the recompute branch takes them from its
 * vote, the reuse branch computes them for the cached rows, so a miss gathers no K rows.
 */
export interface Selection {
  /** The middle rows chosen, the rows attended (those with the sinks and the window), and their scores. */
  fresh: () => { chosen_C: Value; keep_K: Value; scores?: Value };
  /** The rows attended around chosen middle rows: the step's sinks and window added. */
  around: (chosen_C: Value) => Value;
  scoresOf?: (keep_K: Value) => Value;
  /** bool [1]: whether reuse may happen at all this step (beside the fingerprint's similarity). */
  reusable_1?: Value;
}

/**
 * int64 [K]: the selectable rows to attend, `fresh()`'s (built in the recompute branch) unless the
 * step's query fingerprint (mean over T of the query, [H*D]; see FingerprintQuery) is within
 * `threshold` cosine of the cached one, when the cached middle rows are attended with the step's
 * sinks and window; with their scores when the selection gives them. The cached indices stay
 * valid as the cache grows: they index past rows, which an append never moves (the runtime drops
 * them on truncate or gather).
 */
export function cachedSelection(
  model: Model,
  site: SparseSite,
  layer: number,
  options: { threshold: number; fingerprint?: FingerprintQuery },
  selection: Selection,
): { keep_K: Value; scores?: Value; source: FingerprintSource } {
  const b = site.b;
  const { num_heads: H } = site.attrs;
  const shape = site.query_BHTD.type?.kind === "tensor" ? site.query_BHTD.type.shape : undefined;
  const D = shape?.[3];
  if (typeof D !== "number") throw new PipecError("pass-option", `tokenselect: selection_cache needs the query's head dimension to be known (layer ${layer})`);
  const cachedFingerprint_F = b.input(selectionCacheName("cachedFingerprint", layer), DataType.FLOAT, [H * D]);
  const cachedIndices_K = b.input(selectionCacheName("cachedIndices", layer), DataType.INT64, [`tokenselect_cached_${layer}`]);

  const { query_BHTD, source } = fingerprintQuery(site, options.fingerprint ?? "unrotated");
  // The un-rotated query is laid out by the same steps as the node's, so it has its dtype.
  const query = dtypeOf(site.query_BHTD) === DataType.FLOAT ? query_BHTD : b.op.Cast(query_BHTD, { to: DataType.FLOAT });
  const mean_BHD = site.ops.opset >= 18 ? b.op.ReduceMean(query, b.int64([2]), { keepdims: 0 }) : b.op.ReduceMean(query, { axes: [2], keepdims: 0 });
  const fingerprint_F = b.op.Reshape(mean_BHD, b.int64([H * D])); // B = 1: the runtime decodes one sequence
  const sum = (x: Value) => (site.ops.opset >= 13 ? b.op.ReduceSum(x, b.int64([0]), { keepdims: 1 }) : b.op.ReduceSum(x, { axes: [0], keepdims: 1 }));
  // cos >= t as dot > 0 and dot^2 >= t^2 |a|^2 |b|^2: no square root, and zeros (no cache) never pass.
  const dot_1 = sum(b.op.Mul(fingerprint_F, cachedFingerprint_F));
  const norms_1 = b.op.Mul(sum(b.op.Mul(fingerprint_F, fingerprint_F)), sum(b.op.Mul(cachedFingerprint_F, cachedFingerprint_F)));
  const similar_1 = b.op.And(b.op.Greater(dot_1, b.float32(0)), b.op.Not(b.op.Less(b.op.Mul(dot_1, dot_1), b.op.Mul(norms_1, b.float32(options.threshold * options.threshold)))));
  const oneQuery_1 = b.op.And(similar_1, b.op.Equal(site.T_1, b.int64([1])));
  const reused_1 = selection.reusable_1 ? b.op.And(oneQuery_1, selection.reusable_1) : oneQuery_1;

  const parent = site.node.graph!;
  const reuse = new Graph(`tokenselect_reuse_${layer}`, { parent });
  const { scoresOf } = selection;
  site.buildIn(reuse, () => {
    const chosen_C = typed(site.b.op.Identity(cachedIndices_K));
    const keep_K = typed(selection.around(chosen_C));
    reuse.addOutput(chosen_C);
    reuse.addOutput(keep_K);
    if (scoresOf) reuse.addOutput(typedScores(scoresOf(keep_K)));
  });
  const recompute = new Graph(`tokenselect_recompute_${layer}`, { parent });
  site.buildIn(recompute, () => {
    const { chosen_C, keep_K, scores } = selection.fresh();
    recompute.addOutput(typed(chosen_C));
    recompute.addOutput(typed(keep_K));
    if (scoresOf) recompute.addOutput(typedScores(scores!));
  });
  const chosen = b.node("If", [reused_1], { outputs: scoresOf ? 3 : 2, attributes: { then_branch: reuse, else_branch: recompute } });
  const chosen_C = typed(chosen.output(0));
  const keep_K = typed(chosen.output(1));
  const scores = scoresOf ? typedScores(chosen.output(2)) : undefined;

  b.output(chosen_C, selectionCacheName("indices", layer));
  b.output(b.op.Where(reused_1, cachedFingerprint_F, fingerprint_F), selectionCacheName("fingerprint", layer), tensorType(DataType.FLOAT, [H * D]));
  b.output(b.op.Identity(reused_1), selectionCacheName("reused", layer), tensorType(DataType.BOOL, [1]));
  return { keep_K, scores, source };
}

/** The [B, H, T, D] query the fingerprint averages, and where it came from. */
function fingerprintQuery(site: SparseSite, wanted: FingerprintQuery): { query_BHTD: Value; source: FingerprintSource } {
  if (wanted === "rotated") return { query_BHTD: site.query_BHTD, source: { kind: "rotated", reason: "the rotated query was asked for" } };
  const found = unrotatedSource(site.b, site.query_BHTD);
  if ("reason" in found) return { query_BHTD: site.query_BHTD, source: { kind: "rotated", reason: found.reason } };
  return { query_BHTD: found.value, source: { kind: found.rotary ? "unrotated" : "no-rotary" } };
}

function typedScores(scores_BHkvGTK: Value): Value {
  scores_BHkvGTK.type = tensorType(DataType.FLOAT, [undefined, undefined, undefined, undefined]);
  return scores_BHkvGTK;
}

function typed(indices_K: Value): Value {
  indices_K.type = tensorType(DataType.INT64, [undefined]);
  return indices_K;
}
