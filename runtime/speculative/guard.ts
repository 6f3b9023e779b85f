// Whether drafting pays, judged by what steps really cost. The cost model prices session calls
// only; a whole step also pays for drafting, the draft model's catch-up, rollback copies and
// host work, and on a shared machine the call costs measured at start-up drift. So the guard
// measures every step, speculative and plain alike, and lets drafting continue only while it
// yields tokens faster than plain steps do, by a margin: a tie is noise, and noise must not keep
// a losing source drafting. While drafting is off, a short probe now and then asks again; after
// a probe (or a drafting run) that lost, the wait is long enough to pay its loss back 200 times
// over in plain steps, so a source that never pays costs about 0.5%, a cheap probe comes often, and
// a run that paid before it stopped (a copied passage ran out) asks again soon. What drafting
// saved is banked, up to a few plain steps: a later loss (drafting that paid, then one slow step
// on a shared machine) is paid from the bank first, so a source that pays is not shut out for
// hundreds of steps by noise, and one that never pays has nothing banked. One guard
// serves every draft source and is kept per target and source across requests, so what one
// request learned the next one uses.

/** Plain steps before a re-probe, at least. */
const FIRST_GAP = 4;
/**
 * After drafting that lost (a probe, or a run of drafting steps), the wait is long enough that
 * its excess over plain steps is at most this share of the plain time until the next probe: a
 * source that never pays costs at most that much, whatever its probes cost (a lookup probe
 * verifying two wrong tokens, a fraction of a step; a draft model's, a catch-up call over every
 * token since its last draft, several steps on a tiny target), and a cheap probe comes often.
 * Beyond the budget a probe costs what the guard does not time: the plain steps after a draft
 * model's call run slower (its weights evicted the target's from the CPU caches), so a source's
 * real cost is a few times the budget, which is why the budget is small (bench/README.md).
 */
export const PROBE_BUDGET = 0.005;
const MAX_GAP = 512;
/** Savings banked from drafting that paid, at most this many plain steps' worth. */
const BANK_STEPS = 4;
/** While drafting, a forced plain step when no plain step was timed for this many steps, so the reference stays current. */
const PLAIN_REFRESH = 16;
/** Old steps fade by this factor per new one (steps of one kind). */
const FADE = 0.8;
/** Draft tokens a probe verifies: enough to show acceptance, cheap when rejected. */
export const PROBE_TOKENS = 2;
/** Drafting must cost this share less per token than plain steps to go on, or for a probe to win. */
export const MARGIN = 0.03;
/**
 * Plain steps are all alike (one call of one token), so one far above their average was
 * preempted on a busy machine: it counts as this multiple of the average. Drafting steps are
 * not clipped: a spike there only makes drafting look worse, which errs on the safe side.
 */
const PLAIN_SPIKE = 1.5;
/** Plain steps timed before drafting starts: one alone may be a first call's allocations or a preemption. */
const REFERENCE_STEPS = 2;

/** A fading average of milliseconds per generated token. */
class MsPerToken {
  ms = 0;
  tokens = 0;
  steps = 0;

  record(ms: number, tokens: number): void {
    this.ms = this.ms * FADE + ms;
    this.tokens = this.tokens * FADE + tokens;
    this.steps++;
  }

  get value(): number {
    return this.ms / this.tokens;
  }

  restart(ms: number, tokens: number): void {
    this.ms = ms;
    this.tokens = tokens;
    this.steps = 1;
  }
}

/** What the next step does: draft as the length policy says, a plain step, or a short probe draft. */
export type StepPlan = "draft" | "plain" | "probe";

/** What a step's outcome made the guard do: turn drafting on (a probe won) or off (drafting lost). */
export type GuardSwitch = "on" | "off" | undefined;

export class SpeculationGuard {
  private readonly drafting = new MsPerToken();
  private readonly plain = new MsPerToken();
  private on = true;
  private gap = FIRST_GAP;
  private waited = 0;
  private sincePlain = 0;
  /** Milliseconds and tokens of the drafting steps since drafting last turned on. */
  private run = { ms: 0, tokens: 0 };
  /** Milliseconds drafting saved against plain steps and not yet lost again (at most BANK_STEPS plain steps). */
  private bank = 0;

  /** Everything the guard has learned, as plain data (warm-state.ts persists it with the compiled pipeline). */
  snapshot(): GuardSnapshot {
    const average = (a: MsPerToken) => ({ ms: a.ms, tokens: a.tokens, steps: a.steps });
    return { drafting: average(this.drafting), plain: average(this.plain), on: this.on, gap: this.gap, waited: this.waited, sincePlain: this.sincePlain, run: { ...this.run }, bank: this.bank };
  }

  /** A guard that goes on from `snapshot` (a malformed one is refused with a RangeError: the caller starts cold instead). */
  static restore(snapshot: GuardSnapshot): SpeculationGuard {
    const numbers = [snapshot.drafting.ms, snapshot.drafting.tokens, snapshot.drafting.steps, snapshot.plain.ms, snapshot.plain.tokens, snapshot.plain.steps, snapshot.gap, snapshot.waited, snapshot.sincePlain, snapshot.run.ms, snapshot.run.tokens, snapshot.bank];
    if (!numbers.every((n) => typeof n === "number" && Number.isFinite(n) && n >= 0) || typeof snapshot.on !== "boolean") throw new RangeError("not a guard snapshot");
    const guard = new SpeculationGuard();
    Object.assign(guard.drafting, snapshot.drafting);
    Object.assign(guard.plain, snapshot.plain);
    guard.on = snapshot.on;
    guard.gap = snapshot.gap;
    guard.waited = snapshot.waited;
    guard.sincePlain = snapshot.sincePlain;
    guard.run = { ...snapshot.run };
    guard.bank = snapshot.bank;
    return guard;
  }

  /** Drafting starts on (after two plain reference steps): the first steps show whether it pays, and a source that wins from the start loses nothing to finding out. */
  plan(): StepPlan {
    if (this.on) return this.plain.steps < REFERENCE_STEPS || this.sincePlain >= PLAIN_REFRESH ? "plain" : "draft";
    return this.waited >= this.gap ? "probe" : "plain";
  }

  /**
   * One step took `ms` (drafting included) for `tokens` decided tokens. `drafted` says whether
   * it verified a draft; `plan` is what `next()` planned for it (a probe that found nothing to
   * draft, as lookup may, stays pending).
   */
  record(plan: StepPlan, drafted: boolean, ms: number, tokens: number): GuardSwitch {
    if (!drafted) {
      this.plain.record(this.plain.steps >= REFERENCE_STEPS ? Math.min(ms, PLAIN_SPIKE * this.plain.value * tokens) : ms, tokens);
      this.sincePlain = 0;
      if (!this.on && plan !== "probe") this.waited++;
      return undefined;
    }
    this.sincePlain++;
    if (plan === "probe") {
      // A probe is judged on its own: one fast step after a long losing run means the text changed.
      // It must have had a draft token accepted: a rejected probe beating plain steps is only noise.
      this.waited = 0;
      if (tokens > 1 && ms / tokens < this.plain.value * (1 - MARGIN)) {
        this.on = true;
        this.run = { ms, tokens };
        this.drafting.restart(ms, tokens);
        return "on";
      }
      this.gap = this.waitAfter(ms, tokens);
      return undefined;
    }
    this.drafting.record(ms, tokens);
    this.run.ms += ms;
    this.run.tokens += tokens;
    if (this.drafting.steps >= 2 && this.drafting.value > this.plain.value * (1 - MARGIN)) {
      this.on = false;
      this.waited = 0;
      // A run that paid as a whole (a copied passage ran out) asks again soon; one that lost
      // as a whole (a probe won by noise) waits until its loss is paid back, as a losing probe does.
      this.gap = this.waitAfter(this.run.ms, this.run.tokens);
      return "off";
    }
    return undefined;
  }

  /**
   * Plain steps to wait after drafting that took `ms` for `tokens`. A gain beyond the margin goes
   * to the bank; a loss is paid from the bank first, and what is left waits until it is PROBE_BUDGET of the
   * plain steps since.
   */
  private waitAfter(ms: number, tokens: number): number {
    const gain = tokens * this.plain.value - ms;
    if (gain >= 0) {
      // Only what beats the margin is banked: a tie is noise, and noise must not buy a losing source retries.
      this.bank = Math.min(BANK_STEPS * this.plain.value, this.bank + Math.max(0, gain - MARGIN * tokens * this.plain.value));
      return FIRST_GAP;
    }
    const covered = Math.min(this.bank, -gain);
    this.bank -= covered;
    const excessSteps = (-gain - covered) / this.plain.value;
    return Math.min(MAX_GAP, Math.max(FIRST_GAP, Math.ceil(excessSteps / PROBE_BUDGET)));
  }
}

/** A guard's state as plain data. */
export interface GuardSnapshot {
  drafting: { ms: number; tokens: number; steps: number };
  plain: { ms: number; tokens: number; steps: number };
  on: boolean;
  gap: number;
  waited: number;
  sincePlain: number;
  run: { ms: number; tokens: number };
  bank: number;
}

const guards = new WeakMap<object, Map<unknown, SpeculationGuard>>();

/** The guards of `target` by source, if any exist yet. */
export function guardsOf(target: object): ReadonlyMap<unknown, SpeculationGuard> | undefined {
  return guards.get(target);
}

/** Makes `guard` the one `guardFor(target, source)` gives (a restored one). */
export function installGuard(target: object, source: unknown, guard: SpeculationGuard): void {
  let bySource = guards.get(target);
  if (!bySource) guards.set(target, (bySource = new Map()));
  bySource.set(source, guard);
}

/** The guard of `target` drafting with `source` (a draft model, or a key naming a context source). */
export function guardFor(target: object, source: unknown): SpeculationGuard {
  let bySource = guards.get(target);
  if (!bySource) guards.set(target, (bySource = new Map()));
  let guard = bySource.get(source);
  if (!guard) bySource.set(source, (guard = new SpeculationGuard()));
  return guard;
}
