import type { MethodUse } from "../../dsl/method.ts";
import type { ParamValue } from "../../dsl/schema.ts";
import type { LookupSpeculation, RecycleSpeculation, SamplingConfig, StreamingConfig } from "../../runtime/index.ts";

/**
 * Checked method requests as the runtime's options. driver.ts is generated from these, and a
 * command that takes methods as options (`pipec generate --speculate 'lookup(ngram: 3)'`, parsed
 * with dsl's parseMethodOption) can pass them to the runtime the same way.
 */

/** `sampling:` as the runtime's SamplingConfig; undefined is greedy. Filters at their neutral value are left out. */
export function runtimeSampling(use: MethodUse): SamplingConfig | undefined {
  if (use.method === "greedy") return undefined;
  const p = use.params as Record<string, number>;
  const config: SamplingConfig = { temperature: p["temperature"]! };
  if (p["top_k"]! > 0) config.topK = p["top_k"]!;
  if (p["top_p"]! < 1) config.topP = p["top_p"]!;
  if (p["repetition_penalty"]! !== 1) config.repetitionPenalty = p["repetition_penalty"]!;
  config.seed = p["seed"]!;
  return config;
}

/** `speculate: draft(...)` without its model (the caller opens it): the draft length settings. */
export interface DraftSettings {
  /** The draft model's name in the pipeline. */
  model: string;
  draftLength: number | "adaptive";
  adaptive?: { threshold: number; min: number; max: number };
}

/** `speculate:` as the runtime's options: a lookup or recycle speculation, draft settings, or undefined for none. */
export function runtimeSpeculation(use: MethodUse): LookupSpeculation | ({ kind: "draft" } & DraftSettings) | RecycleSpeculation | undefined {
  const p = use.params;
  if (use.method === "lookup") return { kind: "lookup", maxNgram: p["ngram"] as number, ...draftLength(p["max_draft"]!) };
  if (use.method === "recycle") return { kind: "recycle", topK: p["top_k"] as number, tree: p["tree"] as number | "auto" };
  if (use.method !== "draft") return undefined;
  return { kind: "draft", model: p["model"] as string, ...draftLength(p["k"]!) };
}

/** A checked `draft-length` parameter as the runtime's `draftLength` (and `adaptive` bounds). */
function draftLength(value: ParamValue): { draftLength: number | "adaptive"; adaptive?: { threshold: number; min: number; max: number } } {
  return typeof value === "number" ? { draftLength: value } : { draftLength: "adaptive", adaptive: (value as { adaptive: { threshold: number; min: number; max: number } }).adaptive };
}

/** `kv: streaming(...)` as the runtime's eviction settings (the model's streaming-llm pass attends to the same rows); undefined otherwise. */
export function runtimeStreaming(use: MethodUse): StreamingConfig | undefined {
  return use.method === "streaming" ? { sinks: use.params["sinks"] as number, window: use.params["window"] as number } : undefined;
}
