import { Builder } from "../../graph/ir/builder.ts";
import type { Graph } from "../../graph/ir/graph.ts";
import type { Model } from "../../graph/ir/model.ts";
import type { Node } from "../../graph/ir/node.ts";
import type { Value } from "../../graph/ir/value.ts";
import { PipecError } from "../../graph/errors.ts";
import type { Pass, PassContext, PassResult } from "../../graph/pass-manager/pass.ts";
import { isCanonical, readCanonical } from "../attention/canonical-node.ts";
import { createDce } from "../cleanup/dce.ts";

/** Fused residual joins: output 0 = norm(input + skip [+ bias]), output 3 (optional) = the sum. */
const SKIP_NORMS = new Set(["SkipLayerNormalization", "SkipSimplifiedLayerNormalization"]);

/** Where a sublayer's branch rejoins the residual stream. */
interface ResidualJoin {
  node: Node;
  /** Input slot of the branch (the other operand is the residual). */
  branchSlot: number;
  /** The stream after the join: the Add's output, or the skip norm's sum output when it has one. */
  stream: Value | undefined;
}

/**
 * A draft model made from the target by skipping decoder layers (self-speculative decoding):
 * each skipped layer's attention and MLP branches are bypassed, so its residual stream passes
 * through unchanged, and its KV-cache inputs and outputs are dropped (the runtime keeps a cache
 * per KV input it finds, so a draft simply has fewer). Every other input and output stays, so
 * the runtime runs the draft like any decoder of the target's vocabulary.
 *
 * Options: `skip` (layer indices, e.g. "[1, 3]") or `keep_every` n (keep layers 0, n, 2n, ...);
 * `skip` given here (a compiler's lowering) takes their place. Needs canonical attention (run
 * lift-attention first) to find the layers.
 */
export function createSelfDraft(skip?: readonly number[]): Pass {
  return {
    name: "self-draft",
    description: "derive a draft model from the target by skipping decoder layers (after lift-attention)",
    lossy: true,
    run(model: Model, ctx: PassContext): PassResult {
      const graph = model.graph;
      const layers = graph.nodeArray().filter(isCanonical).sort((a, b) => readCanonical(a).layer - readCanonical(b).layer);
      if (layers.length === 0) throw new PipecError("no-canonical-attention", "self-draft finds decoder layers by their pipec::Attention nodes, and this model has none: run lift-attention first");
      const skipped = skippedLayers(skip ? { skip } : ctx.options, layers.length);
      if (skipped.length === 0) return { changed: false, stats: { "layers-skipped": 0, "kv-inputs-dropped": 0 } };

      // Find every join first: bypassing one layer must not hide the next one's structure.
      const plans = skipped.map((index) => {
        const attention = layers[index]!;
        const attentionJoin = findJoin(graph, attention.output(0), residualCandidates(attention));
        if (!attentionJoin) throw new PipecError("self-draft-unrecognised", `self-draft: layer ${index}'s attention output does not rejoin a residual stream (Add or SkipLayerNormalization) that pipec recognises`);
        // A parallel residual (GPT-NeoX, GPT-J: x + attn(ln1 x) + mlp(ln2 x)) joins both branches at once.
        if (joinsParallelBranch(attention.output(0), attentionJoin)) return { attention, joins: [attentionJoin] };
        const mlpStart = SKIP_NORMS.has(attentionJoin.node.op) ? attentionJoin.node.output(0) : attentionJoin.stream!;
        const mlpJoin = attentionJoin.stream ? findMlpJoin(graph, attentionJoin.stream, mlpStart, attentionJoin.node) : undefined;
        if (!mlpJoin) throw new PipecError("self-draft-unrecognised", `self-draft: layer ${index}'s MLP does not rejoin the residual stream in a form pipec recognises`);
        return { attention, joins: [attentionJoin, mlpJoin] };
      });
      for (const { joins } of plans) for (const join of joins) bypass(graph, join);

      const dropped = dropKvSlots(model, plans.map((p) => p.attention), layers.filter((_, i) => !skipped.includes(i)));
      ctx.note(`self-draft: skipped layers ${skipped.join(", ")} of ${layers.length}`);
      return { changed: true, stats: { "layers-skipped": skipped.length, "kv-inputs-dropped": dropped } };
    },
  };
}

/** The layers to skip, from `skip` ("[1, 3]", "1,3" or a list) or `keep_every`. */
export function skippedLayers(options: Readonly<Record<string, unknown>>, layerCount: number): number[] {
  const { skip, keep_every: keepEvery } = options;
  if (skip !== undefined && keepEvery !== undefined) throw new PipecError("bad-pass-option", "self-draft: give skip or keep_every, not both");
  let layers: number[];
  if (keepEvery !== undefined) {
    const n = Number(keepEvery);
    if (!Number.isInteger(n) || n < 1) throw new PipecError("bad-pass-option", `self-draft: keep_every must be a positive integer, got ${JSON.stringify(keepEvery)}`);
    layers = Array.from({ length: layerCount }, (_, i) => i).filter((i) => i % n !== 0);
  } else if (Array.isArray(skip)) {
    layers = skip.map(Number);
  } else if (typeof skip === "string" || typeof skip === "number") {
    const text = String(skip).trim();
    if (!/^\[?\s*(\d+\s*(,\s*\d+\s*)*)?\]?$/.test(text)) throw new PipecError("bad-pass-option", `self-draft: skip must list layer indices like [1, 3], got '${text}'`);
    layers = (text.match(/\d+/g) ?? []).map(Number);
  } else {
    layers = [];
  }
  const bad = layers.find((i) => !Number.isInteger(i) || i < 0 || i >= layerCount);
  if (bad !== undefined) throw new PipecError("bad-pass-option", `self-draft: layer ${bad} does not exist; the model has ${layerCount} layers (0..${layerCount - 1})`);
  if (new Set(layers).size === layerCount) throw new PipecError("bad-pass-option", `self-draft: skipping all ${layerCount} layers leaves no model to draft with`);
  return [...new Set(layers)].sort((a, b) => a - b);
}

/**
 * Values upstream of the attention's query, with every output of their producers: the residual
 * is among them (a skip norm feeds the query its normalised output and the residual its sum).
 */
function residualCandidates(attention: Node): Set<Value> {
  const upstream = new Set<Value>();
  const work = [attention.input(0)!];
  while (work.length) {
    const v = work.pop()!;
    if (upstream.has(v)) continue;
    upstream.add(v);
    for (const sibling of v.producer?.outputs ?? []) if (sibling) upstream.add(sibling);
    for (const input of v.producer?.inputs ?? []) if (input) work.push(input);
  }
  return upstream;
}

/** The first Add / skip norm downstream of `branch` whose other operand is one of `residuals`. */
function findJoin(graph: Graph, branch: Value, residuals: ReadonlySet<Value>): ResidualJoin | undefined {
  const derived = downstreamOf(branch);
  for (const node of graph.nodes()) {
    if (node.op !== "Add" && !SKIP_NORMS.has(node.op)) continue;
    const [a, b] = [node.input(0), node.input(1)];
    if (!a || !b) continue;
    const isResidual = (v: Value) => residuals.has(v) && !v.isInitializer;
    const slot = derived.has(b) && isResidual(a) ? 1 : derived.has(a) && isResidual(b) ? 0 : -1;
    if (slot < 0) continue;
    return { node, branchSlot: slot, stream: node.op === "Add" ? node.output(0) : node.outputs[3] };
  }
  return undefined;
}

/**
 * Whether the branch `join` adds to the residual also carries a sibling branch computed from the
 * same residual (the MLP of a parallel layer): on the way from `attentionOutput` to the join, an
 * Add's other operand is read from the residual rather than from the attention (a bias is neither).
 */
function joinsParallelBranch(attentionOutput: Value, join: ResidualJoin): boolean {
  const fromAttention = downstreamOf(attentionOutput);
  const fromResidual = downstreamOf(join.node.input(1 - join.branchSlot)!);
  const seen = new Set<Value>();
  const work = [join.node.input(join.branchSlot)!];
  while (work.length) {
    const v = work.pop()!;
    if (seen.has(v) || v === attentionOutput || !fromAttention.has(v)) continue;
    seen.add(v);
    const p = v.producer!;
    if (p.op === "Add" && p.inputs.some((i) => i && !fromAttention.has(i) && fromResidual.has(i))) return true;
    for (const i of p.inputs) if (i) work.push(i);
  }
  return false;
}

/**
 * The join after `stream` whose branch starts at `mlpStart` (the MLP's input) and is not `after`.
 * Exporters may re-read the stream through a Cast (a norm computed in float32) before adding.
 */
function findMlpJoin(graph: Graph, stream: Value, mlpStart: Value, after: Node): ResidualJoin | undefined {
  const residuals = new Set([stream]);
  for (const v of residuals) for (const node of v.consumers()) if (node.op === "Cast" || node.op === "Identity") residuals.add(node.output(0));
  const join = findJoin(graph, mlpStart, residuals);
  return join && join.node !== after ? join : undefined;
}

/** Every value computed from `source` (inclusive). */
function downstreamOf(source: Value): Set<Value> {
  const seen = new Set<Value>();
  const work = [source];
  while (work.length) {
    const v = work.pop()!;
    if (seen.has(v)) continue;
    seen.add(v);
    for (const node of v.consumers()) for (const out of node.outputs) if (out) work.push(out);
  }
  return seen;
}

/** The residual passes through: an Add's readers read the residual; a skip norm adds zeros. */
function bypass(graph: Graph, join: ResidualJoin): void {
  const residual = join.node.input(1 - join.branchSlot)!;
  if (join.node.op === "Add") {
    join.node.output(0).replaceAllUsesWith(residual);
    return;
  }
  const zeros = new Builder(graph, { before: join.node, provenance: "self-draft" }).op.Sub(residual, residual);
  join.node.setInput(join.branchSlot, zeros);
}

/**
 * Removes the skipped layers' present outputs and their past inputs. Some exports also read a
 * past input's shape (the past length, for the mask); such a read is given a kept layer's past
 * of the same role, which has the same shape, so the input can still go.
 */
function dropKvSlots(model: Model, skipped: readonly Node[], kept: readonly Node[]): number {
  const graph = model.graph;
  const slots = (nodes: readonly Node[]) =>
    nodes.flatMap((n) => {
      const a = readCanonical(n);
      return [{ past: a.past_key, present: a.present_key }, { past: a.past_value, present: a.present_value }];
    });
  const dropped = slots(skipped);
  const stand = slots(kept.slice(0, 1));
  const presents = new Set(dropped.map((n) => n.present).filter((n): n is string => !!n));
  for (let i = graph.outputs.length - 1; i >= 0; i--) if (presents.has(graph.outputs[i]!.name)) graph.outputs.splice(i, 1);
  createDce().run(model, { options: {}, note: () => {} });
  let removed = 0;
  const pasts = dropped.map((slot, i) => ({ name: slot.past, standIn: stand[i % 2]?.past }));
  for (const { name, standIn } of pasts) {
    const input = name ? graph.lookup(name) : undefined;
    if (!input?.isGraphInput) continue;
    const replacement = standIn ? graph.lookup(standIn) : undefined;
    if (!input.unused && replacement?.isGraphInput && replacement !== input) input.replaceAllUsesWith(replacement);
    if (input.unused) {
      graph.removeInput(input);
      removed++;
    }
  }
  return removed;
}
