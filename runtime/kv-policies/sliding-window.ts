// Sliding-window eviction: the cache keeps the last size - 1 rows after every prompt chunk and
// decode step, so the next token's `size` keys (itself and those rows) are all it holds, and
// memory stays at the window however long generation runs. The model's sliding-window pass
// (passes/kv/sliding-window.ts) attends to those rows alone, as a band over cache rows, so
// evicting changes nothing the model reads. Positions are not renumbered: the kept keys were
// rotated (or given their learned position) at their own positions and the next token keeps its
// absolute position, so the model sees true distances; generation still ends at the model's
// last position.
import type { KvPolicy, KvPolicyHost, RunShape } from "../cache/kv-policy.ts";
import { RuntimeError } from "../errors.ts";

export interface SlidingWindowConfig {
  /** Keys each query attends to, itself included. */
  size: number;
}

export class SlidingWindowEviction implements KvPolicy {
  constructor(readonly config: SlidingWindowConfig) {
    if (!Number.isInteger(config.size) || config.size < 1) throw new RuntimeError("bad-window", `a sliding window holds at least one key, got size ${config.size}`);
  }

  /** A prompt chunk on the kept rows (the first on an empty cache), or a decode step's row on them; at most the run. */
  reserveRows({ prompt, chunk, maxTokens }: RunShape): number {
    const kept = this.config.size - 1;
    const promptRows = chunk >= prompt ? prompt : Math.min(prompt, kept + chunk);
    return Math.min(prompt + maxTokens, Math.max(promptRows, kept + 1));
  }

  afterPromptChunk(host: KvPolicyHost): void {
    this.evict(host);
  }

  afterDecodeStep(host: KvPolicyHost): void {
    this.evict(host);
  }

  private evict(host: KvPolicyHost): void {
    const kept = this.config.size - 1;
    if (host.length <= kept) return;
    // A model without position_ids numbers its tokens by the mask's length, which eviction shortens.
    if (!host.contract.positionType) throw new RuntimeError("sliding-window-positions", "sliding-window eviction needs a model with a position_ids input: without one, positions follow the cache's length and would shift");
    host.gather(Array.from({ length: kept }, (_, i) => host.length - kept + i), host.position);
  }
}
