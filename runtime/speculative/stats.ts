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
  /** "adaptive": the guard chose which steps draft and the cost model how much; "fixed": every step drafted the set length. */
  policy: "adaptive" | "fixed";
  /** The adaptive guard's decisions in this request (all zero under a fixed length). */
  guard: GuardDecisions;
  /**
   * Time this request spent measuring call costs, inside its decode: 0 when they were known
   * before it (restored from the warm state, measured when the pipeline opened, or by an earlier
   * request of this process).
   */
  measureMs: number;
}

/** What a compiled pipeline's warm state (warm-state.ts) gave it when it opened; reported with each of its requests. */
export interface WarmStateStats {
  /** The file was deleted before the pipeline opened (resetWarmState): everything was measured and learned again. */
  reset: boolean;
  /** The file held an entry for the target model on this machine, and it was restored. */
  restored: boolean;
  /** What the pipeline measured when it opened, before any request's clock started ("target cost", "draft cost", "recycle cost"); empty when nothing was missing. */
  measuredAtOpen: string[];
  /** How long opening the warm state took: reading the file, hashing the models and the measurements. */
  openMs: number;
}

export interface GuardDecisions {
  /** Steps the guard let draft at full length. */
  draftSteps: number;
  /** Steps it kept plain (drafting off, a plain reference step, or a source with nothing to draft). */
  plainSteps: number;
  /** Short probe drafts while drafting was off. */
  probes: number;
  /** Times a probe won and drafting turned back on. */
  turnedOn: number;
  /** Times drafting lost to plain steps and turned off. */
  turnedOff: number;
}

export class SpeculativeTally {
  targetCalls = 0;
  replayCalls = 0;
  callsWithDraft = 0;
  draftedTokens = 0;
  acceptedTokens = 0;
  verifyMs = 0;
  readonly guard: GuardDecisions = { draftSteps: 0, plainSteps: 0, probes: 0, turnedOn: 0, turnedOff: 0 };
  policy: "adaptive" | "fixed" = "fixed";
  measureMs = 0;

  /** One verification call; `replayed`: it was followed by a replay call (recurrent state, partial acceptance). */
  record(drafted: number, accepted: number, ms: number, replayed = false): void {
    this.targetCalls += replayed ? 2 : 1;
    if (replayed) this.replayCalls++;
    if (drafted > 0) this.callsWithDraft++;
    this.draftedTokens += drafted;
    this.acceptedTokens += accepted;
    this.verifyMs += ms;
  }

  /** One step the adaptive guard planned (`plan`), and the switch its outcome made. */
  decided(plan: "draft" | "plain" | "probe", switched: "on" | "off" | undefined): void {
    this.policy = "adaptive";
    if (plan === "draft") this.guard.draftSteps++;
    else if (plan === "plain") this.guard.plainSteps++;
    else this.guard.probes++;
    if (switched === "on") this.guard.turnedOn++;
    if (switched === "off") this.guard.turnedOff++;
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
      policy: this.policy,
      guard: { ...this.guard },
      measureMs: this.measureMs,
    };
  }
}
