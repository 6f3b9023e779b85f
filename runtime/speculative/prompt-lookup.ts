// Prompt-lookup decoding (github.com/apoorvumang/prompt-lookup-decoding,
// find_candidate_pred_tokens): the continuation of the first earlier occurrence of the
// context's last n tokens, trying n = maxNgram down to 1. Free to run and strong where the
// answer repeats its input (summaries, extraction, code edits).
import { NO_DRAFT, type Draft, type DraftSource } from "./draft-source.ts";

export class PromptLookup implements DraftSource {
  readonly name = "lookup";
  readonly msPerToken = 0;
  draftMs = 0;

  constructor(readonly maxNgram = 3) {}

  async propose(context: readonly number[], maxTokens: number): Promise<Draft> {
    const t0 = performance.now();
    const tokens = lookup(context, this.maxNgram, maxTokens);
    this.draftMs += performance.now() - t0;
    return tokens.length ? { tokens } : NO_DRAFT;
  }

  async release(): Promise<void> {}
}

/**
 * As the reference implementation: the leftmost match wins, the suffix itself never matches.
 * Unlike it, a continuation shorter than maxTokens (cut at the context's end) is still offered.
 */
export function lookup(context: readonly number[], maxNgram: number, maxTokens: number): number[] {
  const L = context.length;
  if (maxTokens < 1) return [];
  for (let n = Math.min(maxNgram, L - 1); n >= 1; n--) {
    for (let at = 0; at + n < L; at++) {
      let match = true;
      for (let j = 0; j < n && match; j++) match = context[at + j] === context[L - n + j];
      if (!match) continue;
      const start = at + n;
      return context.slice(start, Math.min(start + maxTokens, L));
    }
  }
  return [];
}
