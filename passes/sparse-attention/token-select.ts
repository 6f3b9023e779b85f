import { PipecError } from "../../graph/errors.ts";
import { DataType } from "../../graph/ir/dtype.ts";
import type { Model } from "../../graph/ir/model.ts";
import type { Value } from "../../graph/ir/value.ts";
import type { Pass, PassContext, PassResult } from "../../graph/pass-manager/pass.ts";
import { dtypeOf, shapeOf } from "../attention/ops.ts";
import { attendTwoBlocks } from "../kv/kv-split-attention.ts";
import { appendOnlyWhereAllowed } from "./append-only.ts";
import { cachedSelection, type FingerprintQuery, type FingerprintSource } from "./selection-cache.ts";
import { budgetTokens, formatBudget, type Budget } from "./budget.ts";
import { denseCanonicalNodes, NO_ATTENTION_LEFT } from "./layers.ts";
import { SparseSite } from "./site.ts";
import { attendShared, reportAttendedKeys } from "./attend-selected.ts";

export const TOKEN_SELECT = "tokenselect";

export interface TokenSelectOptions {
  /** Keys a layer attends per step: the sinks, the window (the new row included) and the selected middle keys together; absent: the paper's (TOKEN_SELECT_PAPER). */
  topK?: Budget;
  /** Leading keys always attended to; "auto" or absent: the paper's share of the budget (see budgetShares). */
  sinks?: number | "auto";
  /** Most recent keys always attended to, the step's new row included; "auto" or absent: the paper's share of the budget. */
  window?: number | "auto";
  /** Max-pooling width over the votes (odd; -1 or absent: none). */
  kernelSize?: number;
  /**
   * The paper's selection cache: a layer reuses its previous indices while the query
   * fingerprint's cosine to the one they were chosen for stays >= threshold (contract:
   * sparse-attention/selection-cache.ts; the runtime carries the state). The fingerprint is
   * the un-rotated query unless `fingerprint` says "rotated".
   */
  selectionCache?: { threshold: number; fingerprint?: FingerprintQuery };
  /** Then rewrite to the append-only KV contract where the model allows (see appendOnlyWhereAllowed). */
  appendOnly?: boolean;
}

/** TokenSelect's released configuration (Wu, Pan et al., EMNLP 2025): n_init 128 sinks, n_local 512 recent keys, top_k 2048 selected; `auto` shares a budget as it does. */
export const TOKEN_SELECT_PAPER = { sinks: 128, window: 512, selected: 2048 } as const;
/** The paper's keys a step: its sinks, window and selected keys together. */
export const TOKEN_SELECT_PAPER_BUDGET = TOKEN_SELECT_PAPER.sinks + TOKEN_SELECT_PAPER.window + TOKEN_SELECT_PAPER.selected;

type ResolvedOptions = Required<Omit<TokenSelectOptions, "selectionCache" | "appendOnly">> & Pick<TokenSelectOptions, "selectionCache" | "appendOnly">;

/** What absent options mean: the paper's budget, its shares of it, no pooling (the method table gives every option). */
function resolveOptions(options: TokenSelectOptions): ResolvedOptions {
  return { ...options, topK: options.topK ?? { tokens: TOKEN_SELECT_PAPER_BUDGET }, sinks: options.sinks ?? "auto", window: options.window ?? "auto", kernelSize: options.kernelSize ?? -1 };
}

/**
 * TokenSelect (Wu, Pan et al., EMNLP 2025): per layer and decode step, each query head scores
 * the middle keys (between the sinks and the window) by q.k, normalises its scores with its own
 * softmax, and the heads' probabilities are summed into one vote per key (soft voting); the
 * sinks, the window and the top voted keys form ONE index set per layer of top_k keys in all
 * (budgetShares), gathered for every head. When the budget covers the context every key is kept
 * (the paper's "attend to all").
 * Decode-only here: a multi-query step (prefill) keeps every key. The votes are summed over
 * the batch too, as the runtime decodes one sequence. With a KV cache the index set is among the
 * past rows (the new rows close the window) and the cache's Concat is never read.
 */
export function createTokenSelect(options: TokenSelectOptions = {}): Pass {
  const opts = resolveOptions(options);
  if (opts.kernelSize !== -1 && (opts.kernelSize < 1 || opts.kernelSize % 2 === 0)) {
    throw new PipecError("pass-option", `${TOKEN_SELECT}: kernel_size must be -1 (no pooling) or an odd width, got ${opts.kernelSize}`);
  }
  return {
    name: TOKEN_SELECT,
    description: `TokenSelect: ${formatBudget(opts.topK)} keys a step (${opts.sinks} sinks, ${opts.window} recent, the rest by per-head soft voting)${opts.selectionCache ? `, selection cache at cosine ${opts.selectionCache.threshold}` : ""} (lossy)`,
    lossy: true,
    run(model: Model, ctx: PassContext): PassResult {
      const fingerprints = { unrotated: 0, "no-rotary": 0, rotated: 0 };
      const layers = tokenSelect(model, opts, (layer, source) => {
        fingerprints[source.kind]++;
        if (source.kind === "rotated") ctx.note(`layer ${layer}: the selection-cache fingerprint is the rotated query (${source.reason})`);
      });
      if (layers === 0) ctx.note(NO_ATTENTION_LEFT);
      const appendOnly = opts.appendOnly === true && layers > 0 && appendOnlyWhereAllowed(model, ctx);
      const cacheStats: Record<string, number> = opts.selectionCache
        ? { "fingerprint-unrotated": fingerprints.unrotated, "fingerprint-no-rotary": fingerprints["no-rotary"], "fingerprint-rotated": fingerprints.rotated }
        : {};
      return { changed: layers > 0, stats: { layers, "kv-append-only": appendOnly ? 1 : 0, ...cacheStats } };
    },
  };
}

/** Rewrites every dense canonical node; `onFingerprint` hears how each layer's selection-cache fingerprint was made. */
export function tokenSelect(model: Model, options: TokenSelectOptions, onFingerprint?: (layer: number, source: FingerprintSource) => void): number {
  const opts = resolveOptions(options);
  const nodes = denseCanonicalNodes(model);
  const sharedRegions = new Map<string, KeyRegions>();
  nodes.forEach((node, layer) => {
    const site = new SparseSite(model, node, TOKEN_SELECT, { splitCache: true });
    const b = site.b;
    const key = regionsKey(site);
    const regions = (key !== undefined && sharedRegions.get(key)) || keyRegions(site, opts);
    if (key !== undefined) sharedRegions.set(key, regions);
    // Float32 with a cache: the kept rows' scores come from the vote (no K rows gathered).
    const scored = dtypeOf(site.query_BHTD) === DataType.FLOAT && site.cache !== undefined;
    const cache = opts.selectionCache;
    const around = (chosen_C: Value) => site.b.op.Concat(regions.sinks_S, chosen_C, regions.window_W, { axis: 0 });
    if (!cache) {
      const scores_BHkvGTM = voteScores(site);
      const keep_K = around(chooseMiddle(site, opts, regions, scores_BHkvGTM));
      return scored ? attendScored(site, keep_K, b.op.Gather(scores_BHkvGTM, keep_K, { axis: 3 })) : attendShared(site, keep_K);
    }
    const fresh = () => {
      const scores_BHkvGTM = voteScores(site);
      const chosen_C = chooseMiddle(site, opts, regions, scores_BHkvGTM);
      const keep_K = around(chosen_C);
      return { chosen_C, keep_K, scores: scored ? site.b.op.Gather(scores_BHkvGTM, keep_K, { axis: 3 }) : undefined };
    };
    const scoresOf = (keep_K: Value) => queryKeyScores(site, site.b.op.Gather(site.cache!.key.past, keep_K, { axis: 2 }));
    // A budget covering the middle keeps every key: reusing would drop the rows that left the window since.
    const selected = cachedSelection(model, site, layer, cache, { fresh, around, scoresOf: scored ? scoresOf : undefined, reusable_1: b.op.Not(regions.covered_1) });
    onFingerprint?.(layer, selected.source);
    if (selected.scores) attendScored(site, selected.keep_K, selected.scores);
    else attendShared(site, selected.keep_K);
  });
  return nodes.length;
}

/** Where the sinks, the middle and the window lie among the selectable keys (int64 [1] each). */
interface KeyRegions {
  sinks_1: Value;
  windowStart_1: Value;
  /** Middle keys to choose. */
  chosen_1: Value;
  /** bool [1]: the budget covers every middle key (all are chosen). */
  covered_1: Value;
  /** int64 [S] and [W]: the sinks' and the window's indices (the new rows' too without a cache), always kept. */
  sinks_S: Value;
  window_W: Value;
}

/**
 * Layers whose key regions are the same values, so that the first layer's serve the rest: the
 * same mask input and causality, and past, new and query lengths declared with the same dims (a
 * decoder's layers see one context), since the ~35 small nodes of a region are a noticeable
 * part of a step when every layer recomputes them. Undefined (computed per layer) when a length
 * is not declared.
 */
function regionsKey(site: SparseSite): string | undefined {
  const dims = [shapeOf(site.cache?.key.past ?? site.key_BHkvND)?.[2], site.cache ? shapeOf(site.cache.key.rows)?.[2] : "-", shapeOf(site.query_BHTD)?.[2]];
  if (dims.some((d) => d === undefined)) return undefined;
  const { mask_kind, is_causal } = site.attrs;
  return [site.node.inputs[3]?.name ?? "", mask_kind ?? "", is_causal, ...dims].join("|");
}

/**
 * Built outside any branch: the lengths read the bias, which the attention after the selection
 * reads too. With a KV cache the selectable keys are the past rows: the step's new rows are the
 * window's most recent rows, attended anyway, so the past holds the rest of the window. Without
 * one (the cache's Concat is not what the node reads, e.g. K repeated to H heads before it) every
 * key is selectable and the new rows are the last T: kept with the window, and the past's part of
 * the window ends at its last visible row, since an append-only buffer masks spare rows between
 * the past and the new rows.
 */
function keyRegions(site: SparseSite, opts: ResolvedOptions): KeyRegions {
  const b = site.b;
  const newRows_1 = site.cache ? b.op.Sub(site.N_1, site.selectable_1) : site.T_1;
  const past_1 = site.cache ? site.selectable_1 : b.op.Sub(site.N_1, site.T_1);
  // The window ends at the last visible past row: an append-only cache's buffer holds its rows as
  // a prefix and masks the spare rows after them (a sliding-window layer masks its oldest rows).
  const filled_1 = site.visibleEnd_1(past_1);
  const shares = budgetShares(site, opts);
  const pastWindow_1 = b.op.Sub(shares.window_1, site.min(newRows_1, shares.window_1));
  const sinks_1 = site.min(shares.sinks_1, filled_1);
  const window_1 = site.min(pastWindow_1, b.op.Sub(filled_1, sinks_1));
  const windowStart_1 = b.op.Sub(filled_1, window_1);
  const middle_1 = b.op.Sub(windowStart_1, sinks_1);
  const chosen_1 = site.decodeOnly(site.min(shares.selected_1, middle_1), middle_1);
  const pastWindow_W = site.range(windowStart_1, filled_1);
  const window_W = site.cache ? pastWindow_W : b.op.Concat(pastWindow_W, site.range(past_1, site.N_1), { axis: 0 });
  return { sinks_1, windowStart_1, chosen_1, covered_1: b.op.Not(b.op.Less(chosen_1, middle_1)), sinks_S: site.range(b.int64([0]), sinks_1), window_W };
}

/**
 * int64 [1] each: how the step's budget of B keys (everything a layer attends) is shared between
 * the sinks, the window (the new row included, so at least 1) and the middle keys selected.
 * "auto" sinks and window take the paper's shares of its budget (128 and 512 of 2688, never more
 * than those), so the paper's budget gives its configuration and a smaller one shrinks them.
 */
function budgetShares(site: SparseSite, opts: ResolvedOptions): { sinks_1: Value; window_1: Value; selected_1: Value } {
  const b = site.b;
  const B_1 = budgetTokens(site, opts.topK);
  const one = b.int64([1]);
  const share = (paper: number) => site.min(b.int64([paper]), b.op.Div(b.op.Mul(B_1, b.int64([paper])), b.int64([TOKEN_SELECT_PAPER_BUDGET])));
  const sinks_1 = site.min(opts.sinks === "auto" ? share(TOKEN_SELECT_PAPER.sinks) : b.int64([opts.sinks]), b.op.Sub(B_1, one));
  const window_1 = site.min(opts.window === "auto" ? share(TOKEN_SELECT_PAPER.window) : b.int64([opts.window]), b.op.Sub(B_1, sinks_1));
  const windowWithNewRow_1 = b.op.Where(b.op.Less(window_1, one), one, window_1);
  return { sinks_1, window_1, selected_1: b.op.Sub(b.op.Sub(B_1, sinks_1), windowWithNewRow_1) };
}

/**
 * q.K^T of every query against every selectable key, unscaled, float32 [B, Hkv, G*T, M]: the
 * vote's scores and, gathered at the kept rows, the attention's (see attendScored).
 */
function voteScores(site: SparseSite): Value {
  const widen = (x: Value) => (dtypeOf(x) === DataType.FLOAT ? x : site.b.op.Cast(x, { to: DataType.FLOAT }));
  return queryKeyScores(site, widen(site.cache?.key.past ?? site.key_BHkvND));
}

/**
 * q.K^T of every query against `key_BHkvMD`, unscaled, [B, Hkv, G*T, M]: the G query heads of a
 * KV head stacked as rows, so K is read once and never repeated (onnxruntime fuses the Transpose
 * into the MatMul). The scale is applied later, after a Slice or Concat, never right on the
 * MatMul: onnxruntime would fold it in (MatMulScaleFusion), and its fused kernel with a scale
 * is slower on this one-row product.
 */
function queryKeyScores(site: SparseSite, key_BHkvMD: Value): Value {
  const b = site.b;
  const query = dtypeOf(site.query_BHTD) === DataType.FLOAT ? site.query_BHTD : b.op.Cast(site.query_BHTD, { to: DataType.FLOAT });
  const query_BHkvGTD = site.groups > 1 ? b.op.Reshape(query, b.int64([0, site.attrs.kv_num_heads, -1, 0])) : query;
  return b.op.MatMul(query_BHkvGTD, b.op.Transpose(key_BHkvMD, { perm: [0, 1, 3, 2] }));
}

/**
 * int64 [C]: the top voted middle keys (between the sinks and the window), ascending, as indices
 * among the selectable keys. The vote reads the step's last query's scores over the middle keys
 * only (one Slice of the scores: no mask over every key), normalises each head's with its own
 * softmax and sums them.
 */
function chooseMiddle(site: SparseSite, opts: ResolvedOptions, { sinks_1, windowStart_1, chosen_1 }: KeyRegions, scores_BHkvGTM: Value): Value {
  const b = site.b;
  // [B, H, T, M]; explicit because -1 is ambiguous when M = 0 (a first step's empty past).
  const scores_BHTM = site.groups > 1 ? b.op.Reshape(scores_BHkvGTM, b.op.Concat(b.int64([0, site.attrs.num_heads]), site.T_1, site.selectable_1, { axis: 0 })) : scores_BHkvGTM;
  const lastQuery_1 = b.op.Sub(site.T_1, b.int64([1]));
  const criticality_BH1C = b.op.Slice(scores_BHTM, b.op.Concat(lastQuery_1, sinks_1, { axis: 0 }), b.op.Concat(site.T_1, windowStart_1, { axis: 0 }), b.int64([2, 3]));
  // Unscaled, as TokenSelect's released code votes (get_topk_tokens: softmax of the raw q.k): the attention's
  // scale would sharpen or flatten each head's distribution, and so change the sum over heads.
  const perHead_BH1C = b.op.Softmax(criticality_BH1C, { axis: -1 });
  let votes_C = reduceSum(site, perHead_BH1C, [0, 1, 2]);
  if (opts.kernelSize > 0) votes_C = maxPool(site, votes_C, opts.kernelSize, b.op.Sub(windowStart_1, sinks_1));
  return b.op.Add(site.topKAscending(votes_C, chosen_1), sinks_1);
}

/**
 * Replaces the node by attention over the kept past rows and the step's new rows (float32, with
 * a cache), given the kept rows' scores [B, Hkv, G*T, K] (q.K^T, unscaled; from the vote, which
 * scored every query, so a prefill where every row is kept works too): only their V rows are
 * gathered, and q.K^T is not computed again.
 */
function attendScored(site: SparseSite, keep_K: Value, keptScores_BHkvGTK: Value): void {
  const b = site.b;
  const cache = site.cache!;
  const bias = site.bias();
  const past = (x: Value) => b.op.Slice(x, b.int64([0]), cache.P_1, b.int64([3]));
  const rows = (x: Value) => b.op.Slice(x, cache.P_1, b.int64([Number.MAX_SAFE_INTEGER]), b.int64([3]));
  const mask = bias && b.op.Concat(b.op.Gather(past(bias), keep_K, { axis: 3 }), rows(bias), { axis: 3 });
  const kept = { value: b.op.Gather(cache.value.past, keep_K, { axis: 2 }), heads: site.attrs.kv_num_heads };
  reportAttendedKeys(site, [{ mask, keys_1: b.op.Add(site.ops.dim(keep_K, 0), site.ops.dim(cache.value.rows, 2)) }]);
  const out = attendTwoBlocks(b, site.query_BHTD, kept, { key: cache.key.rows, value: cache.value.rows }, { ...site.attrs, bias: mask, firstScores: keptScores_BHkvGTK });
  site.node.output(0).replaceAllUsesWith(out);
  site.node.graph!.remove(site.node);
}

function reduceSum(site: SparseSite, x: Value, axes: number[]): Value {
  const b = site.b;
  return site.ops.opset >= 13 ? b.op.ReduceSum(x, b.int64(axes), { keepdims: 0 }) : b.op.ReduceSum(x, { axes, keepdims: 0 });
}

/**
 * [C] -> [C]: each vote becomes the largest within `kernel` keys centred on it. MaxPool refuses
 * an empty input (no middle keys), so one -1 (below every vote) is pooled along and sliced off.
 */
function maxPool(site: SparseSite, votes_C: Value, kernel: number, C_1: Value): Value {
  const b = site.b;
  const half = (kernel - 1) / 2;
  const padded = b.op.Concat(votes_C, b.float32([-1]), { axis: 0 });
  const pooled = b.op.MaxPool(b.op.Reshape(padded, b.int64([1, 1, -1])), { kernel_shape: [kernel], pads: [half, half], strides: [1] });
  return b.op.Slice(b.op.Reshape(pooled, b.int64([-1])), b.int64([0]), C_1, b.int64([0]));
}
