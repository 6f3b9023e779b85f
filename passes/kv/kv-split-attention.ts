// Attention that reads the KV cache in place, for kv-append-only's split_attention option.
// Decomposed attention concatenates past and new K/V (a copy of the whole cache per layer per
// step), then repeats them to H heads for GQA (a copy G times larger). Here each canonical block
// whose K and V are Concat(past, new) is computed as two score blocks instead:
//   scores = Concat(Q.K_past^T, Q.K_new^T)        [.., T, P + S]: T·(P+S) floats per head, no K copy
//   probs  = Softmax(scale · scores (+ mask))
//   out    = P_past.V_past + P_new.V_new           V is read, never copied
// with the G query heads of one KV head stacked as rows ([B, H, T, D] -> [B, Hkv, G·T, D]), so K/V
// are never repeated either. Blocks it cannot take (causal flag, float16) get the plain lowering.
import type { Builder } from "../../graph/ir/builder.ts";
import { DataType } from "../../graph/ir/dtype.ts";
import { Builder as GraphBuilder } from "../../graph/ir/index.ts";
import type { Model } from "../../graph/ir/model.ts";
import type { Node } from "../../graph/ir/node.ts";
import type { Value } from "../../graph/ir/value.ts";
import { isCanonical, liftAttention, lowerAttention, readCanonical } from "../attention/index.ts";
import { capScores, dtypeOf, lowestOf } from "../attention/ops.ts";
import { PAST_KEY_VALUES_PREFIX } from "../../runtime/contract-names.ts";

/**
 * Lifts attention, splits every block that reads Concat(past input, new rows) for both K and V,
 * lowers the rest unless `lowerRest` is false (a caller between lift- and lower-attention).
 * Returns the blocks split.
 */
export function splitCachedAttention(model: Model, provenance: string, lowerRest = true): number {
  liftAttention(model);
  const graph = model.graph;
  const pastInputs = new Set(graph.inputs.filter((i) => i.name.startsWith(PAST_KEY_VALUES_PREFIX)));
  let split = 0;
  for (const node of [...graph.nodes()]) {
    if (!isCanonical(node)) continue;
    const key = cacheConcat(node.inputs[1], pastInputs);
    const value = cacheConcat(node.inputs[2], pastInputs);
    const attrs = readCanonical(node);
    if (!key || !value || attrs.is_causal || dtypeOf(node.inputs[0]) !== DataType.FLOAT) continue;
    const b = new GraphBuilder(graph, { before: node, provenance, prefix: `split${attrs.layer}_` });
    const out = twoBlockAttention(b, node, key, value);
    node.outputs[0]!.replaceAllUsesWith(out);
    graph.remove(node);
    split++;
  }
  if (lowerRest) lowerAttention(model);
  return split;
}

export interface CacheRows {
  past: Value;
  rows: Value;
}

/** past and new rows when `x` is Concat(past_key_values.*, rows) on the sequence axis. */
export function cacheConcat(x: Value | undefined, pastInputs: ReadonlySet<Value>): CacheRows | undefined {
  const concat = x?.producer;
  if (concat?.op !== "Concat" || concat.domain !== "" || concat.inputs.length !== 2) return undefined;
  const axis = concat.attrInt("axis");
  const past = throughCopies(concat.inputs[0]!);
  if ((axis !== 2 && axis !== -2) || !pastInputs.has(past)) return undefined;
  return { past, rows: concat.inputs[1]! };
}

/** The value `x` copies, through Identity and one-input Concat (TorchScript exports wrap the past in one). */
export function throughCopies(x: Value): Value {
  let v = x;
  for (let node = v.producer; node && node.inputs.length === 1 && (node.op === "Identity" || node.op === "Concat") && node.domain === ""; node = v.producer) v = node.inputs[0]!;
  return v;
}

function twoBlockAttention(b: Builder, node: Node, key: CacheRows, value: CacheRows): Value {
  const attrs = readCanonical(node);
  const [query_BHTD, , , mask] = node.inputs;
  let bias: Value | undefined;
  if (mask && attrs.mask_kind === "boolean") bias = b.op.Where(mask, b.float32(0), b.float32(lowestOf(DataType.FLOAT)));
  else bias = mask ?? undefined;
  return attendTwoBlocks(b, query_BHTD!, { key: key.past, value: value.past, heads: attrs.kv_num_heads }, { key: key.rows, value: value.rows }, { ...attrs, bias });
}

/** A block of keys and values [B, heads, M, D] for `attendTwoBlocks`. */
export interface KeyBlock {
  /** Not read when the caller gives the block's scores (`firstScores`). */
  key?: Value;
  value: Value;
  /** Heads of the block: the model's KV heads, or H when each query head has its own rows. */
  heads: number;
}

/**
 * float32 attention [B, H, T, D] of the queries over two blocks of keys, `first` then `rows`
 * ([B, Hkv, S, D]), with one softmax over both: neither block is copied or repeated to H heads
 * (the G query heads of one block head are stacked as rows). `bias`: additive, over [.., T, M + S].
 * `firstScores`: Q.K^T of the first block [B, L, (H/L)·T, M], unscaled, when the caller has it.
 */
export function attendTwoBlocks(
  b: Builder,
  query_BHTD: Value,
  first: KeyBlock,
  rows: { key: Value; value: Value },
  attrs: { num_heads: number; kv_num_heads: number; scale: number; softcap?: number; bias?: Value; firstScores?: Value },
): Value {
  const H = attrs.num_heads;
  const L = first.heads;
  const Hkv = attrs.kv_num_heads;
  // Reshape's 0 keeps that axis's size: [B, H, T, X] <-> [B, heads, G·T, X] moves only T. Only
  // tensors with X > 0 are reshaped (-1 is ambiguous next to an empty axis, and the first block
  // is empty on a first step): scores and probabilities over both blocks, or over the S new rows.
  const toBlockHeads = (x: Value, heads: number) => (heads !== H ? b.op.Reshape(x, b.int64([0, heads, -1, 0])) : x);
  const toHeads = (x: Value, heads: number) => (heads !== H ? b.op.Reshape(x, b.int64([0, H, -1, 0])) : x);
  const keyT = (k: Value) => b.op.Transpose(k, { perm: [0, 1, 3, 2] });

  // Scores side by side in the first block's head layout, [B, L, (H/L)·T, M + S].
  const rowScores_BHTS = toHeads(b.op.MatMul(toBlockHeads(query_BHTD, Hkv), keyT(rows.key)), Hkv);
  const firstScores_BLgM = attrs.firstScores ?? b.op.MatMul(toBlockHeads(query_BHTD, L), keyT(first.key!));
  const scores_BLgN = b.op.Concat(firstScores_BLgM, toBlockHeads(rowScores_BHTS, L), { axis: -1 });
  let scores_BHTN = toHeads(scores_BLgN, L);
  if (attrs.scale !== 1) scores_BHTN = b.op.Mul(scores_BHTN, b.float32(attrs.scale));
  if (attrs.softcap) scores_BHTN = capScores(b, scores_BHTN, attrs.softcap);
  if (attrs.bias) scores_BHTN = b.op.Add(scores_BHTN, attrs.bias);
  const probs_BLgN = toBlockHeads(b.op.Softmax(scores_BHTN, { axis: -1 }), L);

  // [1]: the first block's rows, from its scores: counted from V, onnxruntime ran a gathered V
  // before the scores (its rows out of cache when the probabilities read them).
  const M = b.op.Slice(b.op.Shape(firstScores_BLgM), b.int64([3]), b.int64([4]));
  const probsFirst = b.op.Slice(probs_BLgN, b.int64([0]), M, b.int64([3]));
  const probsRows_BHTS = toHeads(b.op.Slice(probs_BLgN, M, b.int64([Number.MAX_SAFE_INTEGER]), b.int64([3])), L);
  const outFirst = toHeads(b.op.MatMul(probsFirst, first.value), L);
  const outRows = toHeads(b.op.MatMul(toBlockHeads(probsRows_BHTS, Hkv), rows.value), Hkv);
  return b.op.Add(outFirst, outRows);
}
