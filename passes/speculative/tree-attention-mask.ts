import { makeAttribute } from "../../graph/ir/attribute.ts";
import { Builder } from "../../graph/ir/builder.ts";
import { DataType } from "../../graph/ir/dtype.ts";
import type { Graph } from "../../graph/ir/graph.ts";
import type { Model } from "../../graph/ir/model.ts";
import type { Value } from "../../graph/ir/value.ts";
import { PipecError } from "../../graph/errors.ts";
import type { Pass, PassResult } from "../../graph/pass-manager/pass.ts";
import { createDce } from "../cleanup/dce.ts";
import { isCanonical, readCanonical } from "../attention/canonical-node.ts";
import { dtypeOf, shapeOf } from "../attention/ops.ts";
import { MS_GROUP_QUERY_ATTENTION_FORM } from "../attention/ms-group-query-attention.ts";
import { ATTENTION_MASK, POSITION_IDS, TREE_MASK_INPUT } from "../../runtime/contract-names.ts";

/** Whether `model` takes a tree_attention_mask input (this pass has run on it). */
export function hasTreeMask(model: Model): boolean {
  return model.graph.lookup(TREE_MASK_INPUT)?.isGraphInput === true;
}

/**
 * Tree verification scores a token tree in one call: each node attends to the cached context
 * and its own ancestors only, and sits at position (context length + depth). The model's own
 * mask (causal, padding, seqlens) cannot say that, so this pass makes both explicit inputs:
 *
 *   tree_attention_mask float [B, 1, S, N]  additive: 0 to attend, -inf (or very negative) not;
 *                                           N = past + S keys, the new tokens last
 *   position_ids        int64 [B, S]        kept when the model has it; added otherwise
 *
 * It rewrites canonical `pipec::Attention` nodes (run lift-attention first), so it works on every
 * encoding recognition handles. Fused GroupQueryAttention derived rotary positions from
 * seqlens_k; its lifted rotary is rewired to read `position_ids`. A causal chain mask reproduces
 * the ordinary outputs. The model's attention_mask input, unread afterwards, is removed.
 */
export function createTreeAttentionMask(): Pass {
  return {
    name: "tree-attention-mask",
    description: "replace every attention's own mask by a tree_attention_mask [B,1,S,N] input and explicit position_ids (after lift-attention)",
    run(model: Model): PassResult {
      const graph = model.graph;
      const attention = graph.nodeArray().filter(isCanonical);
      if (attention.length === 0) {
        throw new PipecError("no-canonical-attention", "tree-attention-mask rewrites pipec::Attention nodes, and this model has none: run lift-attention first (or the model's attention is not recognised)");
      }
      if (hasTreeMask(model)) return { changed: false, stats: { "masks-replaced": 0, "rotary-positions-rewired": 0, "rotary-caches-padded": 0 } };

      const mask = graph.addInput(TREE_MASK_INPUT, DataType.FLOAT, ["batch_size", 1, "sequence_length", "total_sequence_length"]);
      const maskByDtype = new Map<number, Value>([[DataType.FLOAT, mask]]);
      for (const node of attention) {
        const dtype = dtypeOf(node.input(0)) ?? DataType.FLOAT;
        let typed = maskByDtype.get(dtype);
        if (!typed) {
          // lower-attention adds a float16 model's mask in its own dtype before widening.
          typed = new Builder(graph, { before: node, provenance: "tree-attention-mask" }).op.Cast(mask, { to: dtype });
          maskByDtype.set(dtype, typed);
        }
        if (node.inputs.length > 3) node.setInput(3, typed);
        else node.appendInput(typed);
        node.setAttribute(makeAttribute("mask_kind", "additive"));
        node.setAttribute(makeAttribute("is_causal", 0));
      }

      const positions = explicitPositions(graph);
      const rewired = attention.some((n) => readCanonical(n).source_form === MS_GROUP_QUERY_ATTENTION_FORM) ? rewireDerivedRotaryPositions(graph, positions) : 0;
      const padded = padComputedRotaryCaches(graph);
      // The model's own mask construction is unread now.
      createDce().run(model, { options: {}, note: () => {} });
      // And so, usually, is attention_mask: dropping it spares the runtime feeding a [B, P + S]
      // tensor on every step that nothing reads.
      const unreadMask = graph.lookup(ATTENTION_MASK);
      if (unreadMask?.isGraphInput && unreadMask.unused) graph.removeInput(unreadMask);
      return { changed: true, stats: { "masks-replaced": attention.length, "rotary-positions-rewired": rewired, "rotary-caches-padded": padded } };
    },
  };
}

function explicitPositions(graph: Graph): Value {
  const existing = graph.lookup(POSITION_IDS);
  if (existing?.isGraphInput) return existing;
  return graph.addInput(POSITION_IDS, DataType.INT64, ["batch_size", "sequence_length"]);
}

/**
 * The lifted GroupQueryAttention gathers cos/sin rows at positions computed from seqlens_k (a
 * chain position, wrong for a tree). Each such Gather (a constant [positions, D/2] float table
 * indexed by a computed value rather than a graph input) now reads `position_ids`.
 */
function rewireDerivedRotaryPositions(graph: Graph, positions: Value): number {
  const gathers = graph.nodeArray().filter((n) => n.op === "Gather" && isRotaryTable(n.input(0)) && !indexesAnInputDirectly(n.input(1)!));
  const casts = new Map<number, Value>();
  for (const node of gathers) {
    const dtype = dtypeOf(node.input(1)) ?? DataType.INT64;
    let typed = dtype === DataType.INT64 ? positions : casts.get(dtype);
    if (!typed) {
      typed = new Builder(graph, { before: node, provenance: "tree-attention-mask" }).op.Cast(positions, { to: dtype });
      casts.set(dtype, typed);
    }
    node.setInput(1, typed);
  }
  return gathers.length;
}

/**
 * onnxruntime's com.microsoft.RotaryEmbedding refuses a step longer than its cos/sin caches
 * ("Updating cos_cache and sin_cache ... is not currently supported"). An exporter may compute
 * the caches for positions 0..max(position_ids) only (optimize_for_ort's fusion does): enough
 * for a chain of positions, but a tree's S tokens sit at fewer than S distinct positions. Each
 * such computed cache is padded with zero rows to at least S rows; the rotation reads rows at the
 * step's positions only, all below the computed rows, so the outputs are unchanged.
 */
function padComputedRotaryCaches(graph: Graph): number {
  const fused = graph.nodeArray().filter((n) => n.op === "RotaryEmbedding" && n.domain === "com.microsoft" && n.inputs.length >= 4);
  const padded = new Map<Value, Value>();
  for (const node of fused) {
    const positions = node.input(1)!;
    // A scalar position offset (the other position_ids form) never reaches a tree step.
    if (shapeOf(positions)?.length !== 2) continue;
    for (const slot of [2, 3]) {
      const cache = node.input(slot)!;
      if (isConstantTable(cache)) continue;
      let rows = padded.get(cache);
      if (!rows) {
        const b = new Builder(graph, { before: node, provenance: "tree-attention-mask" });
        // position_ids [B, S]: S rows are needed; the cache [rows, D/2] gets max(S - rows, 0) more.
        const missing = b.op.Max(b.op.Sub(b.op.Shape(positions, { start: 1, end: 2 }), b.op.Shape(cache, { start: 0, end: 1 })), b.int64([0]));
        rows = b.op.Pad(cache, b.op.Concat(b.int64([0, 0]), missing, b.int64([0]), { axis: 0 }));
        padded.set(cache, rows);
      }
      node.setInput(slot, rows);
    }
  }
  return padded.size;
}

/**
 * A cos or sin cache: a float table [positions, D/2], constant or computed from position_ids
 * alone (optimize_for_ort computes it for positions 0..max(position_ids), which covers a tree's).
 */
function isRotaryTable(v: Value | undefined): boolean {
  const dtype = dtypeOf(v);
  return !!v && (isConstantTable(v) || readsOnlyPositions(v)) && shapeOf(v)?.length === 2 && (dtype === DataType.FLOAT || dtype === DataType.FLOAT16);
}

/** Computed, and from no graph input but position_ids. */
function readsOnlyPositions(v: Value): boolean {
  if (!v.producer) return false;
  const seen = new Set<Value>();
  const work = [v];
  while (work.length) {
    const x = work.pop()!;
    if (seen.has(x)) continue;
    seen.add(x);
    if (x.isGraphInput && x.name !== POSITION_IDS) return false;
    for (const i of x.producer?.inputs ?? []) if (i) work.push(i);
  }
  return true;
}

function isConstantTable(v: Value | undefined): boolean {
  return !!v && (v.isInitializer || v.producer?.op === "Constant");
}

/** A lookup by a graph input (input_ids, position_ids), possibly cast or reshaped. */
function indexesAnInputDirectly(indices: Value): boolean {
  let v: Value | undefined = indices;
  while (v?.producer && ["Cast", "Identity", "Reshape", "Unsqueeze"].includes(v.producer.op)) v = v.producer.input(0);
  return !!v?.isGraphInput;
}

