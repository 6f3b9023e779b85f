// Rolling a verification back on a model with recurrent state (LFM2's past_conv.*, any
// non-KV past_X): the state has no rows to cut, so it is never cut. The state before the
// verification call is kept (DecoderSequence keeps the one before its latest call); when
// fewer than all drafted tokens are accepted, the sequence goes back to it (attention KV cut
// to before the call) and the accepted tokens are replayed in one call. The state is then
// what one-token steps over the decided tokens would leave: lossless by construction, at one
// extra call on partial acceptance only (full acceptance keeps the call's state as it is).
// Tree verification cannot work this way (a recurrent state runs its tokens as one chain),
// so Token Recycling refuses such models.
import type { DecoderModel, DecoderSequence, SequenceSnapshot } from "../decoder.ts";
import { RuntimeError } from "../errors.ts";

/**
 * After a chain verification call that ran `verified` tokens on `sequence` from `start`,
 * keeps the first `kept` of them. Returns whether it had to replay them (recurrent state
 * and partial acceptance): the replay is a target call of its own.
 */
export async function keepVerified(sequence: DecoderSequence, start: number, verified: readonly number[], kept: number): Promise<boolean> {
  if (!sequence.hasRecurrentState || start + kept === sequence.length) {
    sequence.truncate(start + kept);
    return false;
  }
  sequence.truncate(start); // undoes the verification call, recurrent state included
  if (kept > 0) await sequence.advance(verified.slice(0, kept));
  return true;
}

/**
 * A draft model's sequence follows the context by longest common prefix. With recurrent
 * state it can only go back to a snapshot: the one taken once the context was in (before the
 * draft's own tokens), so the next draft feeds the tokens after that point again.
 */
export class DraftRewind {
  /** The empty sequence's state, and the latest snapshot once the context was in. */
  private readonly empty?: SequenceSnapshot;
  private mark?: SequenceSnapshot;

  constructor(private readonly sequence: DecoderSequence) {
    if (sequence.hasRecurrentState) this.empty = sequence.snapshot();
  }

  /** Cuts the sequence back to at most `common` tokens; returns how many it kept. */
  rewind(common: number): number {
    if (!this.empty || common === this.sequence.length) {
      this.sequence.truncate(common);
      return common;
    }
    // The mark is before every token fed since (the context only grows within a request).
    if (!this.mark || this.mark.length > common) this.mark = this.empty;
    this.sequence.restore(this.mark);
    return this.mark.length;
  }

  /** Remembers the sequence as it is now (the context fed, no draft tokens yet). */
  remember(): void {
    if (this.empty) this.mark = this.sequence.snapshot();
  }
}

/** Token Recycling verifies a tree in one call; a recurrent state cannot branch, so such models are refused. */
export function refuseTreeOnRecurrent(model: DecoderModel, method = "Token Recycling"): void {
  if (model.contract.recurrent.length) {
    throw new RuntimeError("cannot-speculate", `${method} verifies a tree of drafts in one call, but this model carries recurrent state (${model.contract.recurrent.map((s) => s.input).join(", ")}) that runs tokens as one chain and cannot branch; use lookup or draft speculation`);
  }
}
