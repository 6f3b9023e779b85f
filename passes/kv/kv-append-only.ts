// kv-append-only: rewrites an Optimum-layout decoder (past_key_values.{i}.key|value in,
// present.{i}.key|value out) so that each layer outputs only the rows it adds this step,
// present_new.{i}.key|value [B, Hkv, S, D], instead of the whole concatenated cache
// [B, Hkv, P+S, D]. The runtime's append cache then owns one growing buffer per slot, feeds
// it (capacity C, unused rows masked out through attention_mask) as the past, and copies only
// the S new rows back per step: no output proportional to the context crosses session.run.
//
// Where the new rows come from, per producer of present.{i}.*:
//   Concat(past, new, axis=-2)                  the Concat's second input (decomposed attention;
//                                               past may pass through Identity / one-input Concat)
//   Attention-23 / com.microsoft MultiHeadAttention
//                                               the op's K or V input, put in [B, Hkv, S, D]
//   com.microsoft GroupQueryAttention           refused: see refuseGroupQueryAttention
// Option split_attention (default on; Concat-grown caches only): attention reads past and new
// rows as two score blocks instead of their Concat, so the cache is not copied inside the step
// either (kv-split-attention.ts); what that buys grows with the context (bench/README.md).
import type { Graph } from "../../graph/ir/graph.ts";
import { Builder } from "../../graph/ir/index.ts";
import type { Model } from "../../graph/ir/model.ts";
import type { Node } from "../../graph/ir/node.ts";
import type { TensorType } from "../../graph/ir/types.ts";
import type { Value } from "../../graph/ir/value.ts";
import { PipecError } from "../../graph/errors.ts";
import type { Pass, PassContext, PassResult } from "../../graph/pass-manager/pass.ts";
import { appendOnlyOutputOf, ATTENTION_MASK, INPUT_IDS, pastKeyValues, POSITION_IDS } from "../../runtime/contract-names.ts";
import { splitCachedAttention, throughCopies } from "./kv-split-attention.ts";

const PASS = "kv-append-only";
const PRESENT = /^present\.(\d+)\.(key|value)$/;
const MS = "com.microsoft";

export function createKvAppendOnly(): Pass {
  return {
    name: PASS,
    description: "make each layer output only its new K/V rows (present_new.*); the runtime owns the growing cache",
    run(model: Model, ctx: PassContext): PassResult {
      return rewriteAppendOnly(model, { splitAttention: ctx.options["split_attention"] !== false, lowerRest: true }, (n) => ctx.note(n));
    },
  };
}

/**
 * The pass's rewrite. `lowerRest` false leaves canonical attention nodes it does not split for a
 * later lower-attention (a caller between lift- and lower-attention). Refuses (PipecError) with
 * the model untouched.
 */
export function rewriteAppendOnly(model: Model, options: { splitAttention: boolean; lowerRest: boolean }, note: (message: string) => void): PassResult {
  const graph = model.graph;
  // Resolve every output before changing any, so a refusal leaves the model untouched.
  let plans = planOutputs(graph);
  if (plans.length === 0) return { changed: false, stats: { "kv-outputs-rewritten": 0 } };
  let split = 0;
  if (options.splitAttention) {
    if (plans.every((p) => p.fromConcat)) {
      split = splitCachedAttention(model, PASS, options.lowerRest);
      plans = planOutputs(graph);
      if (split === 0) note("split_attention: no attention block over the Concat-grown cache was recognised; attention still reads the concatenated cache");
    } else {
      note("split_attention: skipped, the cache is not grown by Concat in this graph (fused attention op)");
    }
  }
  const S = graph.inputs.find((i) => i.name === INPUT_IDS)?.type;
  for (const { value, index, match, newRows } of plans) {
    const rows = newRows();
    graph.renameValue(rows, appendOnlyOutputOf(`${match[1]}.${match[2]}`));
    rows.type = withSequenceDim(value.type, S?.kind === "tensor" ? S.shape?.[1] : undefined) ?? rows.type;
    graph.setOutput(index, rows);
    // With split attention nothing reads the whole cache any more: drop its Concat, and the
    // copies of the past it read (TorchScript's one-input Concat) when nothing else does.
    if (value.unused && value.producer?.op === "Concat") removeUnusedCopies(graph, value);
  }
  return { changed: true, stats: { "kv-outputs-rewritten": plans.length, "attention-blocks-split": split } };
}

interface OutputPlan {
  value: Value;
  index: number;
  match: RegExpExecArray;
  fromConcat: boolean;
  newRows: () => Value;
}

function planOutputs(graph: Graph): OutputPlan[] {
  const presents = graph.outputs.map((value, index) => ({ value, index, match: PRESENT.exec(value.name) })).filter((p): p is { value: Value; index: number; match: RegExpExecArray } => p.match !== null);
  if (presents.length === 0) {
    if (graph.outputs.some((o) => /^present_\d+$/.test(o.name))) refuse("the model uses onnxruntime-genai's combined present_{i} layout (K and V stacked); the append-only contract is defined for Optimum's present.{i}.key|value");
    return [];
  }
  const plans = presents.map((p) => ({
    ...p,
    fromConcat: p.value.producer?.op === "Concat",
    newRows: newRowsOf(graph, p.value, p.match[1]!, p.match[2] as "key" | "value"),
  }));
  // The runtime feeds a buffer with spare rows as the past: only the mask hides them, and
  // positions must come from position_ids, not from the past's length.
  for (const name of [ATTENTION_MASK, POSITION_IDS]) {
    const input = graph.inputs.find((i) => i.name === name);
    if (!input) refuse(`the model has no ${name} input: the runtime's append cache feeds a buffer larger than the cache and masks the unused rows out through attention_mask, at explicit position_ids`);
    if (input.unused) refuse(`the model never reads its ${name} input, but the runtime's append cache feeds a buffer larger than the cache and relies on attention_mask to hide the spare rows and on position_ids for positions`);
  }
  return plans;
}

function refuse(reason: string): never {
  throw new PipecError("kv-append-only", `cannot rewrite to the append-only KV contract: ${reason}`);
}

/** A thunk that yields the [B, Hkv, S, D] value of the rows `present` adds (building nodes if needed); refuses when there is none. */
function newRowsOf(graph: Graph, present: Value, layer: string, kind: "key" | "value"): () => Value {
  const past = graph.inputs.find((i) => i.name === pastKeyValues(layer, kind));
  if (!past) refuse(`output ${present.name} has no matching input ${pastKeyValues(layer, kind)}`);
  const node = present.producer;
  if (!node) refuse(`output ${present.name} is not computed by any node`);
  const slot = kind === "key" ? 1 : 2;

  if (node.op === "Concat" && node.domain === "") {
    const axis = node.attrInt("axis");
    if (node.inputs.length !== 2 || throughCopies(node.inputs[0]!) !== past || (axis !== 2 && axis !== -2)) {
      refuse(`${present.name} is a Concat, but not of ${past.name} and the new rows on the sequence axis (-2)`);
    }
    const rows = node.inputs[1]!;
    return () => rows;
  }
  if (node.op === "Attention" && node.domain === "" && node.outputs[slot] === present) {
    if (node.inputs[4 + slot - 1] !== past) refuse(`${present.name} comes from an Attention node whose past input is not ${past.name}`);
    if (!readsInput(node.inputs[3], ATTENTION_MASK)) refuse(`the Attention node computing ${present.name} has no mask derived from attention_mask, so the buffer's unused rows would be attended`);
    return headsFirst(graph, node, node.inputs[slot]!, node.attrInt("kv_num_heads"), present);
  }
  if (node.op === "MultiHeadAttention" && node.domain === MS && node.outputs[slot] === present) {
    if (node.inputs[6 + slot - 1] !== past) refuse(`${present.name} comes from a MultiHeadAttention node whose past input is not ${past.name}`);
    if (node.inputs[3]) refuse(`the MultiHeadAttention node computing ${present.name} adds a packed bias to K/V inside the op, so its new rows are not a value in the graph`);
    if (!readsInput(node.inputs[4], ATTENTION_MASK) && !readsInput(node.inputs[5], ATTENTION_MASK)) {
      refuse(`the MultiHeadAttention node computing ${present.name} has no mask or bias derived from attention_mask, so the buffer's unused rows would be attended`);
    }
    return headsFirst(graph, node, node.inputs[slot]!, node.attrInt("num_heads"), present);
  }
  if (node.op === "GroupQueryAttention" && node.domain === MS) refuseGroupQueryAttention(present);
  refuse(`${present.name} is produced by ${node.domain ? `${node.domain}.` : ""}${node.op}, not by a Concat onto ${past.name} or an attention op whose new rows the pass can name`);
}

/**
 * GroupQueryAttention keeps its cache as a prefix of seqlens_k valid rows and writes the new
 * rows after them inside the op (the shared-buffer design onnxruntime-genai drives); with
 * do_rotary it also rotates K internally, so the rotated new rows never exist as a graph value.
 * That op already avoids the per-step copy when driven with past_present_share_buffer.
 */
function refuseGroupQueryAttention(present: Value): never {
  refuse(`${present.name} comes from com.microsoft.GroupQueryAttention, which places the new rows in its own buffer at seqlens_k (and rotates K inside the op), so they are not a graph value; drive it with onnxruntime-genai's shared past/present buffer instead`);
}

/**
 * The K or V input of a fused attention op as [B, Hkv, S, D]: as is when 4-D, else [B, S, Hkv·D]
 * split into heads (both ops take 3-D K/V whenever they carry a head-count attribute).
 */
function headsFirst(graph: Graph, node: Node, x: Value, heads: number | undefined, present: Value): () => Value {
  const rank = x.type?.kind === "tensor" ? x.type.shape?.length : undefined;
  if (rank === 4) return () => x;
  if ((rank !== 3 && rank !== undefined) || !heads) refuse(`the ${node.op} node computing ${present.name} takes K/V of unknown rank or head count, so the pass cannot lay out its new rows as [B, Hkv, S, D]`);
  return () => {
    const b = new Builder(graph, { before: node, provenance: PASS, prefix: `${present.name}_new_` });
    return b.op.Transpose(b.op.Reshape(x, b.int64([0, 0, heads, -1])), { perm: [0, 2, 1, 3] });
  };
}

/** Removes `value`'s producer and, up through Identity / one-input Concat, each copy left unread. */
function removeUnusedCopies(graph: Graph, value: Value): void {
  for (let v: Value | undefined = value; v?.unused && v.producer; ) {
    const node: Node = v.producer;
    const next = node.inputs[0];
    graph.remove(node);
    v = next?.producer && next.producer.inputs.length === 1 && (next.producer.op === "Identity" || next.producer.op === "Concat") ? next : undefined;
  }
}

/** Whether `value` is computed (transitively) from the graph input named `input`. */
function readsInput(value: Value | undefined, input: string): boolean {
  const seen = new Set<Value>();
  const stack = value ? [value] : [];
  while (stack.length) {
    const v = stack.pop()!;
    if (seen.has(v)) continue;
    seen.add(v);
    if (v.name === input && !v.producer) return true;
    for (const i of v.producer?.inputs ?? []) if (i) stack.push(i);
  }
  return false;
}

/** The present's type with its sequence axis (-2) set to the step's length S instead of P + S. */
function withSequenceDim(type: Value["type"], S: number | string | undefined): TensorType | undefined {
  if (type?.kind !== "tensor" || !type.shape) return undefined;
  const shape = type.shape.slice();
  shape[shape.length - 2] = S;
  return { ...type, shape };
}
