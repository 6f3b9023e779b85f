// Counters of one speculative run, reported with the generation stats.
export interface SpeculativeStats {
  source: string;
  /** Target calls after the prompt (each verifies a draft, possibly empty, or is a replay). */
  targetCalls: number;
  /** Of those, calls that replayed accepted tokens into recurrent state after a partial acceptance (recurrent-rollback.ts). */
  replayCalls: number;
  /** Target calls that carried a non-empty draft. */
  callsWithDraft: number;
  generatedTokens: number;
  draftedTokens: number;
  acceptedTokens: number;
  /** Accepted / drafted tokens. */
  acceptanceRate: number;
  /** Accepted draft tokens per target call that carried a draft. */
  meanAcceptedLength: number;
  /** Target calls per generated token (1 for plain decoding, lower is better). */
  targetCallsPerToken: number;
  draftMs: number;
  verifyMs: number;
}

export class SpeculativeTally {
  targetCalls = 0;
  replayCalls = 0;
  callsWithDraft = 0;
  draftedTokens = 0;
  acceptedTokens = 0;
  verifyMs = 0;

  /** One verification call; `replayed`: it was followed by a replay call (recurrent state, partial acceptance). */
  record(drafted: number, accepted: number, ms: number, replayed = false): void {
    this.targetCalls += replayed ? 2 : 1;
    if (replayed) this.replayCalls++;
    if (drafted > 0) this.callsWithDraft++;
    this.draftedTokens += drafted;
    this.acceptedTokens += accepted;
    this.verifyMs += ms;
  }

  summary(source: string, draftMs: number, generatedTokens: number): SpeculativeStats {
    return {
      source,
      targetCalls: this.targetCalls,
      replayCalls: this.replayCalls,
      callsWithDraft: this.callsWithDraft,
      generatedTokens,
      draftedTokens: this.draftedTokens,
      acceptedTokens: this.acceptedTokens,
      acceptanceRate: this.draftedTokens ? this.acceptedTokens / this.draftedTokens : 0,
      meanAcceptedLength: this.callsWithDraft ? this.acceptedTokens / this.callsWithDraft : 0,
      targetCallsPerToken: generatedTokens ? this.targetCalls / generatedTokens : 0,
      draftMs,
      verifyMs: this.verifyMs,
    };
  }
}
