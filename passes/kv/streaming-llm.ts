import { PipecError } from "../../graph/errors.ts";
import type { Model } from "../../graph/ir/model.ts";
import type { Node } from "../../graph/ir/node.ts";
import type { Value } from "../../graph/ir/value.ts";
import type { Pass, PassContext, PassResult } from "../../graph/pass-manager/pass.ts";
import { emitCanonical } from "../attention/canonical-node.ts";
import { dtypeOf, lowestOf } from "../attention/ops.ts";
import { DataType } from "../../graph/ir/dtype.ts";
import { Tensor } from "../../graph/ir/tensor.ts";
import { attendTwoBlocks, cacheConcat } from "./kv-split-attention.ts";
import { appendOnlyWhereAllowed } from "../sparse-attention/append-only.ts";
import { denseCanonicalNodes, NO_ATTENTION_LEFT } from "../sparse-attention/layers.ts";
import { SparseSite } from "../sparse-attention/site.ts";
import { MS_DOMAIN } from "./streaming-llm/fused-rotary.ts";
import { Rerotation, type Rotation } from "./streaming-llm/rotation.ts";
import { hasTreeMask } from "../speculative/tree-attention-mask.ts";
import { attendShared, reportAttendedKeys } from "../sparse-attention/attend-selected.ts";
import { PAST_KEY_VALUES_PREFIX } from "../../runtime/contract-names.ts";

export const STREAMING_LLM = "streaming-llm";

export interface StreamingLlmOptions {
  /** Attention-sink tokens kept from the start of the sequence. */
  sinks: number;
  /** Most recent tokens kept (the new one included). */
  window: number;
  /**
   * Attend over the past buffer and the new rows apart (no layer reads Concat(past, new)); the
   * pass then rewrites to the append-only KV contract where the model allows (kv-append-only:
   * present_new.* carry the new rows, keys before rotation). Not with a tree mask: see appendOnlyRefusal.
   */
  appendOnly?: boolean;
}

/**
 * StreamingLLM: every decode step attends to the first `sinks` keys and the last `window` keys.
 * The runtime's eviction (runtime/kv-policies/streaming.ts) keeps the cache at sinks + window rows so
 * memory stays bounded however long generation runs. Prefill and multi-token steps attend to
 * everything (a tree-attention-mask narrows each query of a verification chunk to what a
 * one-token step would see); the paper's prompt is dense too.
 *
 * Positions are the paper's, within the cache (sinks at 0..s-1, window rows after, the query
 * at the number of keys it sees minus one), so they stay bounded however long generation runs.
 * With rotary embeddings (design (a) of issue 6, what the paper's code does) the cache holds
 * keys before rotation (the present outputs carry them), the graph rotates every cached row at
 * its cache row each step and masks the dropped ones (one pass over the cache per layer, a fused
 * com.microsoft.RotaryEmbedding where the model's rotary has a form it computes, the cache
 * bounded by the eviction), and the runtime feeds the cache length as the next position.
 * Design (b), keys cached rotated at absolute positions with the sinks re-rotated by the evicted
 * count, bounds distances but not the query's own position, which a rotary table of
 * max_position rows cannot serve. Sink distances are corrected per query (attendRepositioned).
 * Models without rotary (learned absolute positions, GPT-2) gather the kept keys (the rows
 * between are not read) and get the in-cache position from the runtime alone.
 *
 * Option appendOnly (what kv.streaming compiles to without speculation): no layer reads
 * Concat(past, new); the past buffer is re-rotated (or gathered) apart from the new rows, and
 * kv-append-only then makes present_new.* carry the new rows only (keys before rotation), so the
 * cache is never copied in the step. The runtime's append cache evicts by gathering the kept rows
 * to the front of its buffer, as the present cache does.
 */
export function createStreamingLlm(opts: StreamingLlmOptions): Pass {
  return {
    name: STREAMING_LLM,
    description: `StreamingLLM: attend to ${opts.sinks} sink tokens and the ${opts.window} most recent (lossy)`,
    lossy: true,
    run(model: Model, ctx: PassContext): PassResult {
      const refusal = opts.appendOnly ? appendOnlyRefusal(model) : undefined;
      if (refusal) ctx.note(`kv_append_only: not applied, ${refusal}`);
      const { layers, rotated } = streamingLlmLayers(model, { ...opts, appendOnly: opts.appendOnly && !refusal });
      if (layers === 0) ctx.note(NO_ATTENTION_LEFT);
      const appendOnly = opts.appendOnly === true && !refusal && layers > 0 && appendOnlyWhereAllowed(model, ctx);
      return { changed: layers > 0, stats: { layers, rotated, "kv-append-only": appendOnly ? 1 : 0 } };
    },
  };
}

/**
 * Why the append-only form is not built, or undefined. A tree mask (speculative verification)
 * covers the cache's rows and the chunk's, while an append-only model attends over its whole
 * buffer, spare rows included: the runtime refuses that pairing (runtime/contract.ts), so
 * streaming with speculation keeps the present-cache form.
 */
function appendOnlyRefusal(model: Model): string | undefined {
  if (hasTreeMask(model)) return "a tree_attention_mask (speculative verification) covers the cache's rows, not an append-only buffer; the present cache is kept";
  return undefined;
}

/** Rewrites every dense canonical attention node; returns how many. */
export function streamingLlm(model: Model, opts: StreamingLlmOptions): number {
  return streamingLlmLayers(model, opts).layers;
}

/** Rewrites every dense canonical attention node; `rotated`: how many of them re-rotate at in-cache positions. */
export function streamingLlmLayers(model: Model, opts: StreamingLlmOptions): { layers: number; rotated: number } {
  const nodes = denseCanonicalNodes(model);
  const flow = new Rerotation(model.graph);
  const pastInputs = new Set(model.graph.inputs.filter((i) => i.name.startsWith(PAST_KEY_VALUES_PREFIX)));
  let rotated = 0;
  let rows: KeptRows | undefined;
  const treeRows = hasTreeMask(model);
  for (const node of nodes) {
    const split = opts.appendOnly === true && !treeRows && dtypeOf(node.inputs[0]) === DataType.FLOAT;
    const site = new SparseSite(model, node, STREAMING_LLM, { splitCache: split });
    const b = site.b;
    const [query, key] = node.inputs as Value[];
    const what = `layer ${site.attrs.layer}`;
    const cache = cacheConcat(key, pastInputs);
    const keyRotation = flow.rotationOf(b, cache?.rows ?? key!, `${what} keys`);
    const queryRotation = flow.rotationOf(b, query!, `${what} queries`);
    if (!keyRotation !== !queryRotation) {
      throw new PipecError("streaming-positions", `${what}: only the ${keyRotation ? "keys" : "queries"} carry a rotary embedding; cannot place them at in-cache positions`);
    }

    if (!keyRotation || !queryRotation || !cache) {
      // Learned absolute positions are baked into the cached keys and values: a verified draft is
      // cached at its fed position, where a one-token step after an eviction would have put it at
      // the cache length, so speculation over this layer would not be lossless.
      if (treeRows) throw new PipecError("streaming-positions", `${what}: StreamingLLM with speculative verification needs rotary positions; this layer's positions are not re-positionable (learned absolute positions are part of the cached keys)`);
      // Learned absolute positions (or no cache to re-position): the runtime's in-cache position ids are all there is.
      const { sinks_1, window_1 } = keptSpans(site, opts, contextLength(site));
      // Split: the kept past rows are gathered and the new rows attended as a second block.
      const end_1 = site.cache?.P_1 ?? site.N_1;
      attendShared(site, b.op.Concat(site.range(b.int64([0]), site.min(sinks_1, end_1)), site.range(site.min(window_1, end_1), end_1), { axis: 0 }));
      continue;
    }
    // Every layer's cache holds the same rows (one cache length per sequence): the first rotated layer's indices serve all.
    rows ??= keptRows(site, opts, site.ops.dim(cache.past, 2));
    attendRepositioned(site, cache.rows, keyRotation, queryRotation, rows, treeRows, what);
    rotated++;
  }
  // The re-rotation of a fusable rotary is onnxruntime's fused RotaryEmbedding (streaming-llm/fused-rotary.ts).
  if (model.graph.nodeArray().some((n) => n.domain === MS_DOMAIN)) model.requireOpset(MS_DOMAIN, 1);
  return { layers: nodes.length, rotated };
}

/**
 * Attention with the paper's positions: the cache holds keys before rotation; every row is
 * rotated at its cache row (the dropped ones masked), and the queries keep the rotation at the
 * fed positions (the runtime feeds the cache length, so the step's rows sit at their cache rows
 * too, and everything stays within sinks + window + T). Distances to window rows are then those
 * within the cache. A query that sees K keys sits at K-1 in the paper, so its distance to sink r
 * is K-1-r, not its cache row minus r: the sink scores get the difference, computed with the
 * query rotated at K-1, as an additive bias (zero when nothing was evicted). K comes from the
 * mask per query, so a verification chunk masked to each query's window (tree-attention-mask)
 * scores as one-token steps would. Masking instead of gathering the kept rows saves copying K
 * and V each step.
 *
 * With the site's cache split (option appendOnly), nothing reads Concat(past, new): the past
 * buffer is rotated at its rows 0..P-1 (an append-only buffer's spare rows are masked by the
 * attention mask), the new rows keep the model's rotation at the fed positions (their cache
 * rows), and attention is two score blocks over them (attendTwoBlocks).
 */
function attendRepositioned(site: SparseSite, newKeys: Value, keyRotation: Rotation, queryRotation: Rotation, rows: KeptRows, treeRows: boolean, what: string): void {
  const b = site.b;
  const ops = site.ops;
  const node = site.node;
  const query = node.inputs[0]!;
  const { num_heads: H, kv_num_heads: Hkv, scale } = site.attrs;
  const { pastSinks_1, P_1, positions_1R, dropped_111N } = rows;
  holdUnrotated(node.inputs[1]!.producer!, node, keyRotation.unrotated, what);

  // The rows the sinks are sliced from: the rotated past, or every row rotated at once.
  let rotated_BHkvND: Value;
  let key_BHkvND: Value | undefined;
  if (site.cache) {
    rotated_BHkvND = keyRotation.at(b, site.cache.key.past, positions_1R);
  } else {
    // Rotated with the new rows after them (never empty: a rotation reshaping an empty past, a prompt's, would fail).
    // A chain's new rows sit at their cache rows, so all rows are rotated at once; a token
    // tree's sit at their depths, which only the fed rotation knows, so that one is kept for them.
    rotated_BHkvND = keyRotation.at(b, node.inputs[1]!, positions_1R);
    key_BHkvND = treeRows ? b.op.Concat(b.op.Slice(rotated_BHkvND, b.int64([0]), P_1, b.int64([2])), newKeys, { axis: 2 }) : rotated_BHkvND;
  }
  const bias = site.bias();
  const keptBias = bias ? b.op.Add(bias, dropped_111N) : dropped_111N;
  reportAttendedKeys(site, [{ mask: keptBias, keys_1: site.N_1 }]);

  // Keys each query sees (the kept ones it is not masked from): its position in the paper is one less.
  const seen_T = b.op.Expand(visibleCounts(site, keptBias), site.T_1);
  const sinkQuery_BHTD = queryRotation.at(b, queryRotation.unrotated, ops.unsqueeze(b.op.Sub(seen_T, b.int64([1])), [0]));
  const shift_BHkvGTD = b.op.Reshape(b.op.Sub(sinkQuery_BHTD, query), b.int64([0, Hkv, -1, 0]));
  const sinks_BHkvDS = b.op.Transpose(b.op.Slice(rotated_BHkvND, b.int64([0]), pastSinks_1, b.int64([2])), { perm: [0, 1, 3, 2] });
  const shape_BHTS = b.op.Concat(b.int64([0, H]), site.T_1, pastSinks_1, { axis: 0 });
  const sinkShift_BHTS = b.op.Mul(b.op.Cast(b.op.Reshape(b.op.MatMul(shift_BHkvGTD, sinks_BHkvDS), shape_BHTS), { to: DataType.FLOAT }), b.float32(scale));
  const zeros_BHTR = b.op.ConstantOfShape(b.op.Concat(ops.dim(sinkShift_BHTS, 0), b.int64([H]), site.T_1, b.op.Sub(site.N_1, pastSinks_1), { axis: 0 }), { value: Tensor.fromArray("zero", DataType.FLOAT, [1], new Float32Array([0])) });
  const shift_BHTN = b.op.Concat(sinkShift_BHTS, zeros_BHTR, { axis: 3 });
  const mask = b.op.Add(keptBias, shift_BHTN);

  const out = site.cache
    ? attendTwoBlocks(b, query, { key: rotated_BHkvND, value: site.cache.value.past, heads: Hkv }, { key: newKeys, value: site.cache.value.rows }, { ...site.attrs, bias: mask })
    : emitCanonical(
        b,
        { query_BHTD: query, key_BHkvND: key_BHkvND!, value_BHkvND: node.inputs[2]!, mask },
        { ...site.attrs, is_causal: 0, mask_kind: "additive", source_form: `${site.attrs.source_form}+${STREAMING_LLM}` },
      );
  node.output(0).replaceAllUsesWith(out);
  node.graph!.remove(node);
}

/** What a step keeps of the N keys (int64 lengths): every row is read, the dropped ones masked. */
interface KeptRows {
  pastSinks_1: Value;
  P_1: Value;
  /** The rows rotated, at their cache rows, as positions [1, R]: the past buffer's P with a split cache, else all N. */
  positions_1R: Value;
  /** float32 [1, 1, 1, N]: 0 for a kept row (a sink or in the window; every row in a multi-token step), the lowest float for a dropped one. */
  dropped_111N: Value;
}

/**
 * int64 [1]: the context's length, the keys a one-token step may see: N, or with a split cache
 * those the last query sees (an append-only buffer's spare rows are masked, not context). Only
 * a decode step reads it (keptSpans): there the last query sees every cached row and itself.
 */
function contextLength(site: SparseSite): Value {
  return site.cache ? site.visible_1() : site.N_1;
}

/** sinks: the first of `context_1` keys kept; window: where the kept recent keys start (every key in a prompt or multi-token step). */
function keptSpans(site: SparseSite, opts: StreamingLlmOptions, context_1: Value): { sinks_1: Value; window_1: Value } {
  const b = site.b;
  const sinks_1 = site.min(b.int64([opts.sinks]), context_1);
  const rest_1 = b.op.Sub(context_1, sinks_1);
  const recent_1 = site.decodeOnly(site.min(b.int64([opts.window]), rest_1), rest_1);
  return { sinks_1, window_1: b.op.Sub(context_1, recent_1) };
}

/**
 * The rows a step after P_1 cached rows keeps: the sinks and the window (every new row is kept).
 * Row n of the N keys is the n-th cached row: with a split cache the past buffer's rows come
 * first (the spare ones past the context masked anyway), then the new rows at P.. (at or after
 * the window's start in a decode step).
 */
function keptRows(site: SparseSite, opts: StreamingLlmOptions, P_1: Value): KeptRows {
  const b = site.b;
  const { sinks_1, window_1 } = keptSpans(site, opts, contextLength(site));
  const rows_N = site.range(b.int64([0]), site.N_1);
  const kept_N = b.op.Or(b.op.Less(rows_N, sinks_1), b.op.Not(b.op.Less(rows_N, window_1)));
  const dropped_N = b.op.Where(kept_N, b.float32(0), b.float32(lowestOf(DataType.FLOAT)));
  const positions_1R = site.ops.unsqueeze(site.cache ? site.range(b.int64([0]), P_1) : rows_N, [0]);
  return { pastSinks_1: site.min(sinks_1, P_1), P_1, positions_1R, dropped_111N: site.ops.unsqueeze(dropped_N, [0, 1, 2]) };
}

/** int64 [T]: how many keys each query may see under the additive `bias_BHTK` (0 visible, lowest not), from batch row 0 and head 0. */
function visibleCounts(site: SparseSite, bias_BHTK: Value): Value {
  const b = site.b;
  const seen = b.op.Cast(b.op.Not(b.op.Less(bias_BHTK, b.float32(0))), { to: DataType.FLOAT });
  const count = site.ops.opset >= 13 ? b.op.ReduceSum(seen, b.int64([-1]), { keepdims: 0 }) : b.op.ReduceSum(seen, { axes: [-1], keepdims: 0 });
  const first = (x: Value) => b.op.Gather(x, b.int64(0), { axis: 0 });
  return b.op.Cast(first(first(count)), { to: DataType.INT64 });
}

/** Makes the cache Concat append `unrotated` rows, so the present output carries keys before rotation. */
function holdUnrotated(concat: Node, attention: Node, unrotated: Value, what: string): void {
  const readers = concat.output(0).consumers().filter((n) => n !== attention && n.op !== "Shape");
  if (readers.length) throw new PipecError("streaming-positions", `${what}: the rotated keys are also read by ${readers[0]!.describe()}; cannot cache them un-rotated`);
  concat.setInput(1, unrotated);
}
