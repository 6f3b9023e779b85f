// StreamingLLM eviction (Xiao et al., ICLR 2024): the cache keeps the first `sinks` rows (the
// attention sinks) and the `window` most recent, so its size is bounded however long generation
// runs. The model's streaming-llm pass attends to the same rows, so evicting changes nothing
// the model would have read. Positions keep counting from the sequence start.
import type { DecoderSequence } from "../decoder.ts";

export interface StreamingConfig {
  sinks: number;
  window: number;
}

/** The rows a cache of `length` rows keeps, or undefined when it is within sinks + window. */
export function streamingKeep(length: number, { sinks, window }: StreamingConfig): number[] | undefined {
  if (length <= sinks + window) return undefined;
  const recent = Array.from({ length: window }, (_, i) => length - window + i);
  return [...Array.from({ length: sinks }, (_, i) => i), ...recent];
}

/** Evicts what StreamingLLM drops from `sequence`'s cache; true when rows were evicted. */
export function evictStreaming(sequence: DecoderSequence, config: StreamingConfig): boolean {
  const keep = streamingKeep(sequence.length, config);
  if (keep) sequence.gather(keep, sequence.position);
  return keep !== undefined;
}
