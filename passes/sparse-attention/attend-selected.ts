import type { Value } from "../../graph/ir/value.ts";
import { DataType } from "../../graph/ir/dtype.ts";
import { tensorType } from "../../graph/ir/types.ts";
import { emitCanonical } from "../attention/canonical-node.ts";
import { dtypeOf } from "../attention/ops.ts";
import { attendTwoBlocks } from "../kv/kv-split-attention.ts";
import { attendedKeysOutput } from "../../runtime/contract-names.ts";
import type { SparseSite } from "./site.ts";

// What replaces a sparse site's node: attention over the keys its selection chose (shared by
// every head, or per query head), plus the step's new rows with a split cache, and the
// attended-keys output the runtime reports. The selection itself is the pass's (site.ts holds
// what it reads).


/**
 * One per-head selection and what the sparse layers after it share: the chosen keys, and what
 * `attendPerHead` builds from them at the first of those layers.
 */
export interface PerHeadSelection {
  /** int64 [B, H, K]: per query head, the selectable keys (any order). */
  keep_BHK: Value;
  /** Masks over [selected keys, new rows], per mask input and causality (layers usually share one). */
  masks: Map<string, { selected?: Value; rows?: Value }>;
}


/**
 * With a cache in float32: replaces the node by dense attention over the past and new rows as
 * two blocks (as kv-append-only's split would) and returns what `select` makes of the
 * selectable scores [B, H, M] of the step's last query, taken from that attention's own
 * past-block scores, so a selection layer reads the past keys once. Undefined (node
 * untouched) otherwise.
 */
export function attendDenseSelecting(site: SparseSite, select: (scores_BHM: Value) => Value): Value | undefined {
  if (!site.cache || dtypeOf(site.query_BHTD) !== DataType.FLOAT) return undefined;
  const b = site.b;
  const { num_heads: H, kv_num_heads: Hkv } = site.attrs;
  const bias = site.bias();
  const pastBias = site.selectableBias();
  const query_BHkvGTD = site.groups > 1 ? b.op.Reshape(site.query_BHTD, b.int64([0, Hkv, -1, 0])) : site.query_BHTD;
  const pastScores_BHkvGTM = b.op.MatMul(query_BHkvGTD, b.op.Transpose(site.cache.key.past, { perm: [0, 1, 3, 2] }));
  // Explicit [B, H, T, M]: -1 is ambiguous when the past is empty (M = 0).
  const pastScores_BHTM = site.groups > 1 ? b.op.Reshape(pastScores_BHkvGTM, b.op.Concat(b.int64([0, H]), site.T_1, site.selectable_1, { axis: 0 })) : pastScores_BHkvGTM;
  const last = site.scalar(b.op.Sub(site.T_1, b.int64([1])));
  let selectable_BHM = b.op.Mul(b.op.Gather(pastScores_BHTM, last, { axis: 2 }), b.float32(site.attrs.scale));
  if (pastBias) selectable_BHM = b.op.Add(selectable_BHM, b.op.Gather(pastBias, last, { axis: 2 }));
  const first = { key: site.cache.key.past, value: site.cache.value.past, heads: Hkv };
  const rows = { key: site.cache.key.rows, value: site.cache.value.rows };
  const out = attendTwoBlocks(b, site.query_BHTD, first, rows, { ...site.attrs, bias, firstScores: pastScores_BHkvGTM });
  const selected = select(selectable_BHM); // built before the node goes: the builder inserts before it
  site.node.output(0).replaceAllUsesWith(out);
  site.node.graph!.remove(site.node);
  return selected;
}

/**
 * Adds the output `attended_keys.<pass>.<layer>`, int64 [1]: how many keys the replacement
 * attends the step's last query to (batch 0, head 0), summed over blocks of `keys_1` keys, each
 * read off its additive bias `mask_BHTK` (undefined: all visible). The runtime reports it per
 * method, so a budget is measured from what the graph attends, not recomputed from the options.
 */
export function reportAttendedKeys(site: SparseSite, blocks: readonly { mask?: Value; keys_1: Value }[]): void {
  const b = site.b;
  const visible = ({ mask, keys_1 }: { mask?: Value; keys_1: Value }): Value => {
    if (!mask) return keys_1;
    const first = (x: Value, axis: number) => b.op.Slice(x, b.int64([0]), b.int64([1]), b.int64([axis]));
    const last_K = b.op.Slice(first(first(mask, 0), 1), b.int64([-1]), b.int64([Number.MAX_SAFE_INTEGER]), b.int64([2]));
    const seen = b.op.Cast(b.op.Not(b.op.Less(last_K, b.float32(0))), { to: DataType.FLOAT });
    return b.op.Reshape(b.op.Cast(b.op.ReduceSum(seen, { keepdims: 0 }), { to: DataType.INT64 }), b.int64([1]));
  };
  const count_1 = blocks.map(visible).reduce((sum, n) => b.op.Add(sum, n));
  b.output(b.op.Identity(count_1), attendedKeysOutput(site.pass, site.attrs.layer), tensorType(DataType.INT64, [1]));
}

/** Replaces the node by attention over selectable keys `keep_K` (one index set for every head), plus the new rows with a cache. */
export function attendShared(site: SparseSite, keep_K: Value): void {
  const b = site.b;
  const bias = site.selectableBias();
  const gather = (x: Value) => b.op.Gather(x, keep_K, { axis: 2 });
  replace(site, 
    {
      key: gather(site.cache?.key.past ?? site.key_BHkvND),
      value: gather(site.cache?.value.past ?? site.value_BHkvND),
      mask: bias && b.op.Gather(bias, keep_K, { axis: 3 }),
      kvHeads: site.attrs.kv_num_heads,
    },
    site.cache && { key: site.cache.key.rows, value: site.cache.value.rows, mask: site.newRowsBias() },
  );
}

/**
 * Replaces the node by attention where query head h reads selectable keys `sel.keep_BHK[:, h]`
 * only (plus the new rows with a cache). Each KV head gathers the rows its G query heads chose
 * ([B, Hkv, G*K, D]), so K and V are read at the selected rows and never repeated to H heads.
 * The rows are gathered whole from K viewed as [B*Hkv*M, D] (a row copy each; GatherElements
 * would index every element). The masks over the selected keys are built at the first layer
 * that uses `sel` and reused by the rest, which usually share its mask. The row indices stay
 * per layer, from the layer's own past: onnxruntime runs a gather as soon as its inputs are
 * ready, and shared indices would move every layer's K gather to the selection, so its rows
 * would be out of cache when the layer's scores read them.
 */
export function attendPerHead(site: SparseSite, sel: PerHeadSelection): void {
  const b = site.b;
  const ops = site.ops;
  const H = site.attrs.num_heads;
  const key_BHkvMD = site.cache?.key.past ?? site.key_BHkvND;
  const rows = selectedRows(site, sel.keep_BHK);
  const rowShape = b.op.Concat(b.int64([-1]), ops.dim(key_BHkvMD, 3), { axis: 0 });
  const gather = (x_BHkvMD: Value) => b.op.Reshape(b.op.Gather(b.op.Reshape(x_BHkvMD, rowShape), rows, { axis: 0 }), b.int64([0, H, -1, 0]));
  const maskKey = `${site.node.inputs[3]?.name ?? ""}|${site.attrs.mask_kind ?? ""}|${site.attrs.is_causal}`;
  let masks = sel.masks.get(maskKey);
  if (!masks) {
    masks = selectedMasks(site, sel.keep_BHK);
    sel.masks.set(maskKey, masks);
  }
  const selected = { key: gather(key_BHkvMD), value: gather(site.cache?.value.past ?? site.value_BHkvND), mask: masks.selected, kvHeads: H };
  replace(site, selected, site.cache && { key: site.cache.key.rows, value: site.cache.value.rows, mask: masks.rows });
}

/** int64 [B, Hkv, G*K]: the row of each choice in K viewed as [B*Hkv*M, D], (b*Hkv + j)*M + m. */
function selectedRows(site: SparseSite, keep_BHK: Value): Value {
  const b = site.b;
  const Hkv = site.attrs.kv_num_heads;
  const B_1 = site.ops.dim(site.query_BHTD, 0);
  const keep_BHkvGK = b.op.Reshape(keep_BHK, b.int64([0, Hkv, -1]));
  const heads_BHkv1 = b.op.Reshape(site.range(b.int64([0]), b.op.Mul(B_1, b.int64([Hkv]))), b.int64([-1, Hkv, 1]));
  return b.op.Add(b.op.Mul(heads_BHkv1, site.selectable_1), keep_BHkvGK);
}

/** The biases over the selected keys [B, H, T, K] and over the new rows [B, H, T, S] (undefined when every key is visible). */
function selectedMasks(site: SparseSite, keep_BHK: Value): { selected?: Value; rows?: Value } {
  const b = site.b;
  const ops = site.ops;
  const H = site.attrs.num_heads;
  const B_1 = ops.dim(site.query_BHTD, 0);
  const bias = site.selectableBias();
  let selected: Value | undefined;
  if (bias) {
    const full_BHTM = b.op.Expand(bias, b.op.Concat(B_1, b.int64([H]), site.T_1, site.selectable_1, { axis: 0 }));
    const keep_BHTK = b.op.Expand(ops.unsqueeze(keep_BHK, [2]), b.op.Concat(B_1, b.int64([H]), site.T_1, ops.dim(keep_BHK, 2), { axis: 0 }));
    selected = b.op.GatherElements(full_BHTM, keep_BHTK, { axis: 3 });
  }
  const newBias = site.newRowsBias();
  const S_1 = ops.dim(site.cache?.key.rows ?? site.key_BHkvND, 2);
  const rows = newBias && b.op.Expand(newBias, b.op.Concat(B_1, b.int64([H]), site.T_1, S_1, { axis: 0 }));
  return { selected, rows };
}

/** [B, Hkv, S, D] -> [B, H, S, D]: each KV head's rows repeated for its G query heads (S rows: cheap). */
function toQueryHeads(site: SparseSite, x_BHkvSD: Value): Value {
  if (site.groups === 1) return x_BHkvSD;
  const b = site.b;
  const repeated = b.op.Expand(site.ops.unsqueeze(x_BHkvSD, [2]), b.int64([1, 1, site.groups, 1, 1]));
  return b.op.Reshape(repeated, b.op.Concat(b.int64([0, site.attrs.num_heads, -1]), site.ops.dim(x_BHkvSD, 3), { axis: 0 }));
}

/**
 * Replaces the node by attention over `sel`, followed by the new `rows` ([B, Hkv, S, D]) when
 * given: in float32 as two score blocks (neither is copied), else over their Concat (the rows
 * repeated to H heads when `sel` has one head per query head).
 */
function replace(site: SparseSite, sel: { key: Value; value: Value; mask?: Value; kvHeads: number }, rows?: { key: Value; value: Value; mask?: Value }): void {
  const b = site.b;
  const mask = sel.mask && rows?.mask ? b.op.Concat(sel.mask, rows.mask, { axis: 3 }) : sel.mask;
  reportAttendedKeys(site, [{ mask: sel.mask, keys_1: site.ops.dim(sel.key, 2) }, ...(rows ? [{ mask: rows.mask, keys_1: site.ops.dim(rows.key, 2) }] : [])]);
  let out: Value;
  if (rows && dtypeOf(site.query_BHTD) === DataType.FLOAT) {
    const first = { key: sel.key, value: sel.value, heads: sel.kvHeads };
    out = attendTwoBlocks(b, site.query_BHTD, first, rows, { ...site.attrs, bias: mask });
  } else {
    const repeat = (x: Value) => (sel.kvHeads === site.attrs.num_heads ? toQueryHeads(site, x) : x);
    const key = rows ? b.op.Concat(sel.key, repeat(rows.key), { axis: 2 }) : sel.key;
    const value = rows ? b.op.Concat(sel.value, repeat(rows.value), { axis: 2 }) : sel.value;
    out = emitCanonical(
      b,
      { query_BHTD: site.query_BHTD, key_BHkvND: key, value_BHkvND: value, mask },
      { ...site.attrs, kv_num_heads: sel.kvHeads, is_causal: 0, mask_kind: mask ? "additive" : undefined, source_form: `${site.attrs.source_form}+${site.pass}` },
    );
  }
  site.node.output(0).replaceAllUsesWith(out);
  site.node.graph!.remove(site.node);
}
