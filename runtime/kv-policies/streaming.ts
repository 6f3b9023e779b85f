// StreamingLLM eviction (Xiao et al., ICLR 2024): the cache keeps the first `sinks` rows (the
// attention sinks) and the `window` most recent, so its size is bounded however long generation
// runs. The model's streaming-llm pass attends to the same rows, so evicting changes nothing
// the model would have read. Positions are the paper's, within the cache: after an eviction the
// next token sits at the cache length, so position ids (and a learned position table, GPT-2)
// stay below sinks + window however long generation runs; a rotary model's cache holds keys
// before rotation, which the graph rotates at their cache rows every step.
import type { KvPolicy, KvPolicyHost, RunShape } from "../cache/kv-policy.ts";

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

/** Evicts what StreamingLLM drops from `sequence`'s cache (the next position becomes the kept length); true when rows were evicted. */
export function evictStreaming(sequence: Pick<KvPolicyHost, "length" | "gather">, config: StreamingConfig): boolean {
  const keep = streamingKeep(sequence.length, config);
  if (keep) sequence.gather(keep);
  return keep !== undefined;
}

/**
 * The most rows a streaming cache holds in a run: a prompt chunk on top of the kept rows (the
 * first chunk on an empty cache), or a decode step's row; at most the run's length. An append
 * cache reserves this many, so its buffer stays at sinks + window + 1 rows however long the run.
 */
export function streamingRows(prompt: number, chunk: number, maxTokens: number, { sinks, window }: StreamingConfig): number {
  const promptRows = chunk >= prompt ? prompt : Math.min(prompt, sinks + window + chunk);
  return Math.min(prompt + maxTokens, Math.max(promptRows, sinks + window + 1));
}

/**
 * The policy: evict after every prompt chunk and every decode step (a speculative step's
 * rejected rows are rolled back first, so verification attends before anything is evicted).
 * The prompt attends densely; once it is in, a model with a tree_attention_mask input gets
 * masks that let each verified query see what a one-token step at its row would (decoder.ts).
 */
export class StreamingEviction implements KvPolicy {
  constructor(readonly config: StreamingConfig) {}

  reserveRows({ prompt, chunk, maxTokens }: RunShape): number {
    return streamingRows(prompt, chunk, maxTokens, this.config);
  }

  afterPromptChunk(host: KvPolicyHost): void {
    evictStreaming(host, this.config);
  }

  afterPrompt(host: KvPolicyHost): void {
    if (host.contract.hasTreeMask) host.streaming = this.config;
  }

  afterDecodeStep(host: KvPolicyHost): void {
    evictStreaming(host, this.config);
  }
}
