// What every draft source offers the verification loop: given the decided context, up to
// `maxTokens` guesses of what follows. Sources that sample say with which distribution
// (q), so verification can stay lossless; deterministic ones (prompt lookup) leave it out.
export interface Draft {
  tokens: number[];
  /** q for each drafted token: the warped distribution it was drawn from; absent for a deterministic draft (q = one-hot). */
  probs?: Float32Array[];
  /** The draft's own probability of each token (its confidence); absent when the source has none. */
  confidence?: number[];
}

export interface DraftSource {
  /** Names the source in stats and bench tables. */
  readonly name: string;
  /** Milliseconds this source has spent drafting. */
  readonly draftMs: number;
  /** What one more draft token costs (0 for free sources); known after `measure`. */
  readonly msPerToken: number;
  /** Times the source once, before the first draft that a cost-aware policy plans. */
  measure?(context: readonly number[]): Promise<void>;
  propose(context: readonly number[], maxTokens: number): Promise<Draft>;
  release(): Promise<void>;
}

export const NO_DRAFT: Draft = { tokens: [] };
