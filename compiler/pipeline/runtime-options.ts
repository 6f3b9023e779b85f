import type { MethodUse } from "../../dsl/method.ts";
import type { SamplingConfig, StreamingConfig } from "../../runtime/index.ts";
import { methodOf } from "../methods/index.ts";
import type { KvPolicyRequest, RuntimeSpeculation } from "../methods/method.ts";

export type { DraftSettings } from "../methods/method.ts";

/**
 * Checked method requests as the runtime's options, as their method table entries say
 * (`runtime`). driver.ts is generated from these, and a command that takes methods as options
 * (`pipec generate --speculate 'lookup(ngram: 3)'`, parsed with parseMethodOption) can pass them
 * to the runtime the same way.
 */

/** `sampling:` as the runtime's SamplingConfig; undefined is greedy. */
export function runtimeSampling(use: MethodUse): SamplingConfig | undefined {
  return methodOf(use).runtime?.sampling?.(use.params);
}

/** `speculate:` as the runtime's options: a lookup or recycle speculation, draft settings, or undefined for none. */
export function runtimeSpeculation(use: MethodUse): RuntimeSpeculation | undefined {
  return methodOf(use).runtime?.speculation?.(use.params);
}

/** `kv:` as the runtime's eviction settings (the method's graph pass attends to the same rows); undefined for none. */
export function runtimeStreaming(use: MethodUse): StreamingConfig | undefined {
  return methodOf(use).runtime?.streaming?.(use.params);
}

/** The KV policies the requests ask the runtime for (a method's own, by its file: `runtime.kvPolicy`), in slot order. */
export function runtimeKvPolicies(uses: readonly MethodUse[]): KvPolicyRequest[] {
  return uses.flatMap((use) => methodOf(use).runtime?.kvPolicy?.(use.params) ?? []);
}
