// The policies a compiled model's contract calls for: the graph carries their state as inputs
// and outputs, so every sequence of the model must have them. Policies a run asks for
// (StreamingLLM's eviction) are added by the generation loop instead.
import type { KvPolicy } from "../cache/kv-policy.ts";
import type { DecoderContract } from "../contract.ts";
import { TokenSelectCache } from "./token-select-cache.ts";

const FROM_CONTRACT: ((contract: DecoderContract) => KvPolicy | undefined)[] = [TokenSelectCache.forContract];

export function contractPolicies(contract: DecoderContract): KvPolicy[] {
  return FROM_CONTRACT.map((create) => create(contract)).filter((p): p is KvPolicy => p !== undefined);
}
