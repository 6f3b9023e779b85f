// Turning a growing list of token ids into text deltas, with stop strings.
// Decoding re-reads only a short window of recent tokens (not the whole output each
// step), and waits while the window ends in an incomplete UTF-8 sequence (U+FFFD).
// Text that might be the start of a stop string is held back until it is known not to be.
import type { TextTokenizer } from "./tokenizer.ts";

export class TextStream {
  private readonly ids: number[] = [];
  private prefixOffset = 0;
  private readOffset = 0;
  /** Decoded text not yet handed out (possible start of a stop string). */
  private pending = "";
  private emitted = "";
  stopped = false;

  constructor(
    private readonly tokenizer: TextTokenizer,
    private readonly stopStrings: readonly string[],
  ) {}

  /** All text handed out so far. */
  get text(): string {
    return this.emitted;
  }

  /** Adds one token; returns the text that can be shown now (possibly ""). */
  push(token: number): string {
    this.ids.push(token);
    if (this.stopped || !this.decodeTail(false)) return "";
    return this.release(false);
  }

  /** Generation has ended: everything still held back (incomplete characters included), up to a stop string. */
  flush(): string {
    if (this.stopped) return "";
    this.decodeTail(true);
    return this.release(true);
  }

  /** Moves newly decodable text into `pending`; false when nothing new (or only a partial character) came. */
  private decodeTail(final: boolean): boolean {
    const before = this.tokenizer.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const after = this.tokenizer.decode(this.ids.slice(this.prefixOffset));
    if (after.length <= before.length || (!final && after.endsWith("\uFFFD"))) return false;
    this.pending += after.slice(before.length);
    this.prefixOffset = this.readOffset;
    this.readOffset = this.ids.length;
    return true;
  }

  private release(final: boolean): string {
    let cut = this.pending.length;
    for (const stop of this.stopStrings) {
      const at = this.pending.indexOf(stop);
      if (at >= 0 && at < cut) {
        cut = at;
        this.stopped = true;
      }
    }
    if (this.stopped) {
      const out = this.pending.slice(0, cut);
      this.pending = "";
      this.emitted += out;
      return out;
    }
    const hold = final ? 0 : this.heldBackLength();
    const out = this.pending.slice(0, this.pending.length - hold);
    this.pending = this.pending.slice(this.pending.length - hold);
    this.emitted += out;
    return out;
  }

  /** Longest suffix of `pending` that is a proper prefix of some stop string. */
  private heldBackLength(): number {
    let hold = 0;
    for (const stop of this.stopStrings) {
      for (let n = Math.min(stop.length - 1, this.pending.length); n > hold; n--) {
        if (this.pending.endsWith(stop.slice(0, n))) {
          hold = n;
          break;
        }
      }
    }
    return hold;
  }
}
