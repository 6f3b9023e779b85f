// A KV policy decides what a sequence's cache keeps, and carries whatever state that takes
// between model calls: StreamingLLM's eviction, TokenSelect's selection cache
// (runtime/kv-policies/). The sequence and the generation loop call its hooks at fixed points;
// a new policy is a file that implements the ones it needs (docs/runtime.md, "KV policies").
import type * as ort from "onnxruntime-node";
import type { DecoderContract } from "../contract.ts";
import type { StreamingConfig } from "../kv-policies/streaming.ts";
import type { KvCache, PerHeadIndices } from "./kv-cache.ts";

/** What a policy may read of the sequence it serves and do to its cache (DecoderSequence). */
export interface KvPolicyHost {
  readonly contract: DecoderContract;
  /** Its layers (the order of PerHeadIndices), rows (`row`), bytes. */
  readonly cache: KvCache;
  /** Rows cached. */
  readonly length: number;
  /** Position id of the next token. */
  readonly position: number;
  /** Keeps the rows `indices` in every layer and head; the next token sits at `nextPosition` (default indices.length). */
  gather(indices: readonly number[], nextPosition?: number): void;
  /** Keeps, per layer and KV head, the rows `indices` names; the next token stays at `nextPosition` (default: where it was). */
  gatherPerHead(indices: PerHeadIndices, nextPosition?: number): void;
  /** StreamingLLM's sinks and window for tree-verification masks (decoder.ts). */
  streaming?: StreamingConfig;
}

/** One model call. */
export interface KvCall {
  /** Rows the call adds (S): 1 for a decode step, more for a prompt chunk or a verification. */
  rows: number;
  /** Rows cached before it. */
  pastRows: number;
}

/** How the cache's rows changed other than by a call appending to them. */
export type RowsChange =
  /** Rows from `length` on are gone (rollback after verification, restoring a snapshot). */
  | { kind: "truncate"; length: number }
  /** Row j is old row indices[j], in every layer and head. */
  | { kind: "gather"; indices: readonly number[] }
  /** Row j of layer l, KV head h is old row indices[l][h][j]. */
  | { kind: "gather-per-head"; indices: PerHeadIndices };

/** The shape of one generation run, for a policy that bounds the cache. */
export interface RunShape {
  prompt: number;
  /** Rows per prefill call. */
  chunk: number;
  maxTokens: number;
}

export interface KvPolicy {
  /** Before each model call: state the graph reads into `feeds`, outputs the policy reads back into `fetches` (name -> null). */
  beforeCall?(call: KvCall, feeds: Record<string, ort.Tensor>, fetches: Record<string, ort.Tensor | null>): void;
  /** After each model call, once the cache holds its rows: the outputs asked for in beforeCall. */
  afterCall?(call: KvCall, outputs: Record<string, ort.Tensor>): void;
  /** The rows changed (truncate, rollback, a gather by any policy or caller): state indexed by rows must follow or be dropped. */
  onRowsChanged?(change: RowsChange): void;
  /** The most rows the cache holds in a run of this shape, when the policy bounds it (an append cache reserves that many). */
  reserveRows?(run: RunShape): number;
  /** Generation: after each prompt chunk's call. */
  afterPromptChunk?(host: KvPolicyHost): void;
  /** Generation: once the whole prompt is in, before the first decode step. */
  afterPrompt?(host: KvPolicyHost): void;
  /** Generation: after each decode step (one token, or a speculative step once verification has rolled back what it rejected). */
  afterDecodeStep?(host: KvPolicyHost): void;
}

/**
 * Per-layer (optionally per-KV-head) state a policy keeps between calls, keyed by the layer a
 * model's inputs name (KvSlot.layer, KvCache.layers[l].layer).
 */
export class StateSlots<T> {
  private readonly slots = new Map<number, T[]>();

  get(layer: number, head = 0): T | undefined {
    return this.slots.get(layer)?.[head];
  }

  set(layer: number, value: T, head = 0): void {
    let heads = this.slots.get(layer);
    if (!heads) this.slots.set(layer, (heads = []));
    heads[head] = value;
  }

  clear(): void {
    this.slots.clear();
  }
}

/** The policies of one sequence, each hook called on every policy that has it, in the order they were added. */
export class KvPolicies {
  private readonly list: KvPolicy[] = [];

  add(policy: KvPolicy): void {
    this.list.push(policy);
  }

  /** The policy of this class, if the sequence has one. */
  find<P extends KvPolicy>(type: abstract new (...args: never[]) => P): P | undefined {
    return this.list.find((p): p is P => p instanceof type);
  }

  beforeCall(call: KvCall, feeds: Record<string, ort.Tensor>, fetches: Record<string, ort.Tensor | null>): void {
    for (const p of this.list) p.beforeCall?.(call, feeds, fetches);
  }

  afterCall(call: KvCall, outputs: Record<string, ort.Tensor>): void {
    for (const p of this.list) p.afterCall?.(call, outputs);
  }

  rowsChanged(change: RowsChange): void {
    for (const p of this.list) p.onRowsChanged?.(change);
  }

  /** The fewest rows any policy bounds the run to, or `unbounded` when none does. */
  reserveRows(run: RunShape, unbounded: number): number {
    return Math.min(unbounded, ...this.list.map((p) => p.reserveRows?.(run) ?? Infinity));
  }

  afterPromptChunk(host: KvPolicyHost): void {
    for (const p of this.list) p.afterPromptChunk?.(host);
  }

  afterPrompt(host: KvPolicyHost): void {
    for (const p of this.list) p.afterPrompt?.(host);
  }

  afterDecodeStep(host: KvPolicyHost): void {
    for (const p of this.list) p.afterDecodeStep?.(host);
  }
}
