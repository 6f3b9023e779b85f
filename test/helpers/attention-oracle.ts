// An oracle for the sparse-attention passes that does not trust the rewritten graph: the model's
// own Q, K and V of every layer come from onnxruntime on the UNREWRITTEN model, the keys each
// query head attends to are chosen in plain TypeScript, and attention over them is computed here
// too. The unrewritten model runs with every layer's attention output replaced by an input, so a
// decode step is replayed layer by layer: run, read layer l's Q, K, V, compute its output here,
// feed it, run again for layer l + 1. The last run's logits are what the method, as specified,
// makes of the step; the rewritten graph's logits (and per-layer attention outputs) must match.
//
// lift-attention is used only to NAME the values (on a lifted copy): which value is a layer's
// query, key, value and attention output. Nothing the rewritten graph computes is read, and the
// naming is checked: dense attention computed here must reproduce the unrewritten model.
import * as ort from "onnxruntime-node";
import { DataType } from "../../graph/ir/dtype.ts";
import type { Model } from "../../graph/ir/model.ts";
import { inferShapes } from "../../graph/ir/shape-inference/index.ts";
import { isCanonical, readCanonical } from "../../passes/attention/canonical-node.ts";
import { liftAttention } from "../../passes/attention/lift.ts";
import { seededFeeds } from "./ort-inputs.ts";
import { modelBytes } from "./ort-parity.ts";

/** One attention layer of the unrewritten model, by value names. */
export interface OracleLayer {
  layer: number;
  heads: number;
  kvHeads: number;
  scale: number;
  /** D: the head dimension. */
  headDim: number;
  /** [B, H, T, D], rotary applied. */
  query: string;
  /** [B, Hkv, N, D]: every key of the step (past and new), rotary applied, as the attention reads it (Hkv = H where the model repeats K before the op). */
  key: string;
  /** The key is the model's present output, Concat(past, new): a pass sees the cache's rows apart. */
  keyIsPresent: boolean;
  value: string;
  /** [B, H, T, D]: the attention's result, as the layer's next op reads it. */
  output: string;
  /** The op reading `output` and that op's first output (named alike in the rewritten graph). */
  reader: { output: string; input: number };
}

/**
 * Names each layer's Q, K, V and attention output in `original` from a lifted copy. Throws when
 * lift had to build one of them (a fused encoding: the value does not exist in the original).
 */
export function oracleLayers(original: Model, lifted: Model): OracleLayer[] {
  liftAttention(lifted);
  inferShapes(lifted);
  const layers = lifted.graph.nodeArray().filter(isCanonical).map((node) => {
    const attrs = readCanonical(node);
    const [query, key, value] = node.inputs.map((v) => v!.name);
    const use = node.output(0).uses[0];
    if (!use || node.output(0).uses.length !== 1) throw new Error(`layer ${attrs.layer}: the attention output has ${node.output(0).uses.length} readers; the oracle expects one`);
    const readerOutput = use.node.output(0).name;
    const readerInOriginal = original.graph.lookup(readerOutput)?.producer;
    for (const [what, name] of [["query", query], ["key", key], ["value", value], ["attention reader", readerOutput]] as const) {
      if (!original.graph.lookup(name!)) throw new Error(`layer ${attrs.layer}: the ${what} '${name}' is lift's own value, not the model's (a fused encoding): the oracle cannot read it from the unrewritten model`);
    }
    const output = readerInOriginal!.inputs[use.index]!.name;
    const shape = node.inputs[0]!.type?.kind === "tensor" ? node.inputs[0]!.type.shape : undefined;
    const headDim = shape?.[3];
    if (typeof headDim !== "number") throw new Error(`layer ${attrs.layer}: the query's head dimension is not known`);
    const keyIsPresent = original.graph.lookup(key!)!.isGraphOutput;
    return { layer: attrs.layer, heads: attrs.num_heads, kvHeads: attrs.kv_num_heads, scale: attrs.scale, headDim, query: query!, key: key!, keyIsPresent, value: value!, output, reader: { output: readerOutput, input: use.index } };
  });
  return layers.sort((a, b) => a.layer - b.layer);
}

/** The input that replaces layer l's attention output in the oracle model. */
const overrideName = (layer: number) => `oracle_attention.${layer}`;

/** `original` (modified in place) with each layer's attention output an input, and its Q, K, V graph outputs. */
function oracleModel(original: Model, layers: readonly OracleLayer[]): Model {
  inferShapes(original);
  const g = original.graph;
  for (const l of layers) {
    const out = g.lookup(l.output)!;
    out.replaceAllUsesWith(g.addInput(overrideName(l.layer), DataType.FLOAT, [1, l.heads, 1, undefined]));
    for (const name of [l.query, l.key, l.value]) {
      const v = g.lookup(name)!;
      if (!v.isGraphOutput) g.addOutput(v);
    }
  }
  return original;
}

/** The rewritten model with each layer's attention output (found by its reader's output name) as a graph output; returns their names. */
export function exposeAttentionOutputs(rewritten: Model, layers: readonly OracleLayer[]): string[] {
  inferShapes(rewritten);
  return layers.map((l) => {
    const reader = rewritten.graph.lookup(l.reader.output)?.producer;
    if (!reader) throw new Error(`layer ${l.layer}: '${l.reader.output}' is gone from the rewritten graph`);
    const v = reader.inputs[l.reader.input]!;
    if (!v.isGraphOutput) rewritten.graph.addOutput(v);
    return v.name;
  });
}

/** Layer l's operands for one decode step (batch 1, one query), as float32 arrays. */
export interface LayerStep {
  layer: number;
  /** See OracleLayer.keyIsPresent. */
  keyIsPresent: boolean;
  heads: number;
  kvHeads: number;
  scale: number;
  /** Keys in the step: past rows 0..N-2 and the new row N-1. */
  N: number;
  D: number;
  /** q(h): the query of head h [D]. */
  q(h: number): Float32Array;
  /** k(j, n): KV head j's key at row n [D]; v likewise. */
  k(j: number, n: number): Float32Array;
  v(j: number, n: number): Float32Array;
}

/** Per query head, the key rows it attends to (any order). */
export type Attended = readonly (readonly number[])[];

/** How a method attends at one layer: the rows per query head, given the layer's operands. */
export type Policy = (step: LayerStep) => Attended;

/** Query head h reads KV head floor(h / G), as the models' repeat_kv does (the dense check holds the oracle to it). */
export const groupedKvHead = (step: { heads: number; kvHeads: number }, h: number): number => Math.floor(h / (step.heads / step.kvHeads));

/** scale * q_h . k over KV head `kvHead`'s rows `rows`, in float64. */
export function scores(step: LayerStep, h: number, kvHead: number, rows: readonly number[]): number[] {
  const q = step.q(h);
  return rows.map((n) => {
    const k = step.k(kvHead, n);
    let s = 0;
    for (let d = 0; d < step.D; d++) s += q[d]! * k[d]!;
    return s * step.scale;
  });
}

/** Every row, for every head: dense attention. */
export const dense: Policy = (step) => Array.from({ length: step.heads }, () => Array.from({ length: step.N }, (_, n) => n));

/** Maps query head h to the KV head it reads. */
export type KvHeadOf = (step: LayerStep, h: number) => number;

/** Softmax attention of each head over its rows only, [H*D] (float64 sums, rounded to float32). */
export function attend(step: LayerStep, attended: Attended, kvHeadOf: KvHeadOf = groupedKvHead): Float32Array {
  const out = new Float32Array(step.heads * step.D);
  for (let h = 0; h < step.heads; h++) {
    const j = kvHeadOf(step, h);
    const rows = attended[h]!;
    const s = scores(step, h, j, rows);
    const max = Math.max(...s);
    const w = s.map((x) => Math.exp(x - max));
    const total = w.reduce((a, b) => a + b, 0);
    const acc = new Float64Array(step.D);
    rows.forEach((n, i) => {
      const v = step.v(j, n);
      for (let d = 0; d < step.D; d++) acc[d] += (w[i]! / total) * v[d]!;
    });
    out.set(acc, h * step.D);
  }
  return out;
}

/**
 * The indices of the k largest of `values`, ascending; equal values go to the lower index (ONNX
 * TopK's rule). `margin`: the smallest gap between a chosen value and a left-out one that differ
 * (Infinity when none is left out), i.e. how far rounding would have to move a value to change
 * the choice; exact ties (a max-pooling's copies) are broken by index on both sides instead.
 */
export function topK(values: readonly number[], k: number): { indices: number[]; margin: number } {
  const order = values.map((v, i) => i).sort((a, b) => values[b]! - values[a]! || a - b);
  const chosen = order.slice(0, k).map((i) => values[i]!);
  const left = order.slice(k).map((i) => values[i]!);
  let margin = Infinity;
  if (chosen.length > 0 && left.length > 0) {
    const low = Math.min(...chosen);
    const high = Math.max(...left);
    const aboveTie = chosen.filter((v) => v !== high);
    const belowTie = left.filter((v) => v !== low);
    if (aboveTie.length > 0) margin = Math.min(margin, Math.min(...aboveTie) - high);
    if (belowTie.length > 0) margin = Math.min(margin, low - Math.max(...belowTie));
  }
  return { indices: order.slice(0, k).sort((a, b) => a - b), margin };
}

export interface OracleRun {
  logits: Float32Array;
  /** Per layer: the attention output this oracle computed, [H*D]. */
  attention: Float32Array[];
  /** Per layer: what the policy attended. */
  attended: Attended[];
}

/** A decode step: `past` seeded past rows (uniform in [-1, 1)), one new token at position `past`. */
export function decodeFeeds(session: ort.InferenceSession, past: number, seed: number): Record<string, ort.Tensor> {
  const dims = { batch_size: 1, past_sequence_length: past, sequence_length: 1, total_sequence_length: past + 1 };
  const feeds = seededFeeds(session, seed, dims);
  if (feeds.position_ids) feeds.position_ids = new ort.Tensor("int64", BigInt64Array.from([BigInt(past)]), [1, 1]);
  return feeds;
}

/** The unrewritten model, ready to replay decode steps layer by layer. */
export class AttentionOracle {
  private constructor(
    readonly layers: readonly OracleLayer[],
    private readonly session: ort.InferenceSession,
  ) {}

  /** `load` is called twice: one copy is lifted to name the values, the other runs. */
  static async create(load: () => Model | Promise<Model>): Promise<AttentionOracle> {
    const original = await load();
    const layers = oracleLayers(original, await load());
    const session = await ort.InferenceSession.create(modelBytes(oracleModel(original, layers)));
    return new AttentionOracle(layers, session);
  }

  /** The feeds of a decode step for this model (without the oracle's own inputs). */
  feeds(past: number, seed: number): Record<string, ort.Tensor> {
    const feeds = decodeFeeds(this.session, past, seed);
    for (const l of this.layers) delete feeds[overrideName(l.layer)];
    return feeds;
  }

  /** Replays one decode step with `policy` choosing each layer's keys (and `kvHeadOf` mapping heads, for the oracle's own check). */
  async run(feeds: Record<string, ort.Tensor>, policy: Policy, kvHeadOf: KvHeadOf = groupedKvHead): Promise<OracleRun> {
    const overrides: Record<string, ort.Tensor> = {};
    // Layer l's Q, K, V read only the overrides of the layers before it: zeros stand in for the rest.
    for (const l of this.layers) overrides[overrideName(l.layer)] = new ort.Tensor("float32", new Float32Array(l.heads * l.headDim), [1, l.heads, 1, l.headDim]);
    const attention: Float32Array[] = [];
    const attended: Attended[] = [];
    for (const l of this.layers) {
      const out = await this.session.run({ ...feeds, ...overrides });
      const step = layerStep(l, out);
      const chosen = policy(step);
      const o = attend(step, chosen, kvHeadOf);
      attention.push(o);
      attended.push(chosen);
      overrides[overrideName(l.layer)] = new ort.Tensor("float32", o, [1, l.heads, 1, step.D]);
    }
    const out = await this.session.run({ ...feeds, ...overrides });
    return { logits: out.logits!.data as Float32Array, attention, attended };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

function layerStep(l: OracleLayer, out: Record<string, ort.Tensor>): LayerStep {
  const [q, k, v] = [out[l.query]!, out[l.key]!, out[l.value]!];
  const [B, H, T, D] = q.dims as number[];
  const [, Hkv, N] = k.dims as number[];
  if (B !== 1 || T !== 1 || H !== l.heads || Hkv !== l.kvHeads) throw new Error(`layer ${l.layer}: query ${q.dims} / key ${k.dims}: the oracle replays one-token steps of batch 1`);
  const [qd, kd, vd] = [q.data as Float32Array, k.data as Float32Array, v.data as Float32Array];
  return {
    layer: l.layer, keyIsPresent: l.keyIsPresent, heads: H!, kvHeads: Hkv!, scale: l.scale, N: N!, D: D!,
    q: (h) => qd.subarray(h * D!, (h + 1) * D!),
    k: (j, n) => kd.subarray((j * N! + n) * D!, (j * N! + n + 1) * D!),
    v: (j, n) => vd.subarray((j * N! + n) * D!, (j * N! + n + 1) * D!),
  };
}

/** Largest |a - b|. */
export function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}
