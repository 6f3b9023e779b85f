import type { DecoderContract } from "../contract.ts";
import { AppendKvCache } from "./append-kv-cache.ts";
import type { KvCache } from "./kv-cache.ts";
import { PresentKvCache } from "./present-kv-cache.ts";

export interface KvCacheOptions {
  /** Initial rows of an append-only cache's buffer (it doubles when full). */
  initialCapacity?: number;
}

/** The cache a compiled model's contract asks for: append-only rows or the model's present outputs. */
export function createKvCache(contract: DecoderContract, options: KvCacheOptions = {}): KvCache {
  const maskType = contract.maskType ?? "int64";
  return contract.kvMode === "append"
    ? new AppendKvCache(contract.kv, maskType, options.initialCapacity ?? 64)
    : new PresentKvCache(contract.kv, maskType);
}
