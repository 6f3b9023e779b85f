// TokenSelect's selection cache, per layer: the query fingerprint the layer's indices were
// chosen for, and those indices (past rows). The model decides reuse (cosine to the fingerprint
// >= its compiled threshold); the policy only carries the state between calls, and drops it
// when the rows it indexes move.
import * as ort from "onnxruntime-node";
import type { KvCall, KvPolicy } from "../cache/kv-policy.ts";
import { StateSlots } from "../cache/kv-policy.ts";
import type { DecoderContract, SelectionCacheSlot } from "../contract.ts";
import { selectionCacheName } from "../contract-names.ts";

interface LayerSelection {
  fingerprint: ort.Tensor;
  /** The middle rows chosen (the model adds the sinks and its window of the step). */
  indices: BigInt64Array;
}

export class TokenSelectCache implements KvPolicy {
  /** Reuse decisions made by one-query steps, over every layer. */
  reused = 0;
  recomputed = 0;
  private readonly kept = new StateSlots<LayerSelection>();
  private readonly none = new Map<number, ort.Tensor>();

  /** The cache a model compiled with TokenSelect's selection_cache carries (its contract has selection-cache slots). */
  static forContract(contract: DecoderContract): TokenSelectCache | undefined {
    return contract.selectionCache.length > 0 ? new TokenSelectCache(contract.selectionCache) : undefined;
  }

  constructor(private readonly slots: readonly SelectionCacheSlot[]) {
    for (const s of slots) this.none.set(s.layer, new ort.Tensor("float32", new Float32Array(s.fingerprintSize), [s.fingerprintSize]));
  }

  /** Feeds each layer's fingerprint and chosen middle rows; zeros and no rows where nothing is kept. */
  beforeCall(_call: KvCall, feeds: Record<string, ort.Tensor>, fetches: Record<string, ort.Tensor | null>): void {
    for (const { layer } of this.slots) {
      for (const output of ["fingerprint", "indices", "reused"] as const) fetches[selectionCacheName(output, layer)] = null;
      const kept = this.kept.get(layer);
      const indices = kept?.indices ?? new BigInt64Array(0);
      feeds[selectionCacheName("cachedFingerprint", layer)] = kept?.fingerprint ?? this.none.get(layer)!;
      feeds[selectionCacheName("cachedIndices", layer)] = new ort.Tensor("int64", indices, [indices.length]);
    }
  }

  /**
   * Keeps what a one-query step attended. A multi-query step (prefill, verification) attends
   * every key, so it leaves nothing to reuse: the next decode step chooses afresh.
   */
  afterCall({ rows }: KvCall, outputs: Record<string, ort.Tensor>): void {
    if (rows !== 1) return this.kept.clear();
    for (const { layer } of this.slots) {
      const reused = Boolean((outputs[selectionCacheName("reused", layer)]!.data as ArrayLike<unknown>)[0]);
      if (reused) this.reused++;
      else this.recomputed++;
      const indices = outputs[selectionCacheName("indices", layer)]!.data as BigInt64Array;
      this.kept.set(layer, { fingerprint: outputs[selectionCacheName("fingerprint", layer)]!, indices: indices.slice() });
    }
  }

  /** Forgets every layer's selection: rows it indexed may be gone or moved (truncate, gather). */
  onRowsChanged(): void {
    this.kept.clear();
  }
}
