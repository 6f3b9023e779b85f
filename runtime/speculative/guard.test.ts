// The guard's decisions from step timings (exact, with made-up times), and on real sessions: a
// draft model that is never right costs a handful of probes, and output stays plain decoding's.
import { describe, expect, it } from "vitest";
import { Generator } from "../generate.ts";
import { guardFor, MARGIN, PROBE_BUDGET, SpeculationGuard, type StepPlan } from "./guard.ts";
import { referencePair } from "../../test/helpers/reference-pair.ts";

/** Runs `steps` steps: a plain step takes 10 ms for one token, a drafting step `draftMs` for `draftTokens`. */
function drive(guard: SpeculationGuard, steps: number, draftMs: number, draftTokens: number): StepPlan[] {
  const plans: StepPlan[] = [];
  for (let i = 0; i < steps; i++) {
    const plan = guard.plan();
    plans.push(plan);
    if (plan === "plain") guard.record(plan, false, 10, 1);
    else guard.record(plan, true, draftMs, draftTokens);
  }
  return plans;
}

/** Plain steps of 10 ms until the guard plans a probe; returns how many. */
function plainStepsUntilProbe(guard: SpeculationGuard): number {
  let waited = 0;
  while (guard.plan() !== "probe") {
    guard.record("plain", false, 10, 1);
    waited++;
  }
  return waited;
}

const gaps = (plans: StepPlan[]) => plans.flatMap((p, i) => (p === "probe" ? [i] : [])).map((at, i, all) => at - (all[i - 1] ?? at));

describe("SpeculationGuard", () => {
  it("drafts after two plain reference steps while drafting pays, refreshing the reference every 16 drafting steps", () => {
    const plans = drive(new SpeculationGuard(), 36, 12, 3);
    expect(plans.slice(0, 3)).toEqual(["plain", "plain", "draft"]);
    expect(plans.filter((p) => p === "plain")).toHaveLength(4); // steps 0, 1, 18, 35
    expect(plans[18]).toBe("plain");
    expect(plans).not.toContain("probe");
  });

  it("stops after two losing drafting steps; a source that loses by 1% then probes every 4 plain steps (its probes cost 0.25%)", () => {
    const plans = drive(new SpeculationGuard(), 400, 10.1, 1);
    expect(plans.slice(0, 4)).toEqual(["plain", "plain", "draft", "draft"]);
    expect(plans.slice(4).filter((p) => p === "draft")).toHaveLength(0);
    expect(new Set(gaps(plans).slice(1))).toEqual(new Set([5]));
  });

  it("a probe that cost much more than plain steps waits until its excess is PROBE_BUDGET (0.5%) of the plain time since", () => {
    const guard = new SpeculationGuard();
    drive(guard, 10, 10.1, 1);
    while (guard.plan() !== "probe") guard.record("plain", false, 10, 1);
    guard.record("probe", true, 30, 1); // two plain steps' worth of excess: 2 / PROBE_BUDGET steps of wait
    const wait = 2 / PROBE_BUDGET;
    const plans = drive(guard, wait + 2, 10, 1);
    expect(plans.indexOf("probe")).toBeGreaterThanOrEqual(wait);
    expect(plans.indexOf("probe")).toBeLessThanOrEqual(wait + 1); // floating point
  });

  it("a winning probe turns drafting back on", () => {
    const guard = new SpeculationGuard();
    drive(guard, 20, 10.1, 1);
    const plans = drive(guard, 40, 12, 3);
    const probe = plans.indexOf("probe");
    expect(probe).toBeGreaterThanOrEqual(0);
    expect(plans[probe + 1]).toBe("draft");
    expect(plans.slice(probe + 1, probe + 10).every((p) => p === "draft")).toBe(true);
  });

  it("a probe that found nothing to draft stays pending", () => {
    const guard = new SpeculationGuard();
    drive(guard, 10, 10.1, 1);
    while (guard.plan() !== "probe") guard.record("plain", false, 10, 1);
    guard.record("probe", false, 10, 1);
    expect(guard.plan()).toBe("probe");
  });

  it("a probe whose draft was rejected loses, however fast it ran", () => {
    const guard = new SpeculationGuard();
    drive(guard, 10, 10.1, 1);
    while (guard.plan() !== "probe") guard.record("plain", false, 10, 1);
    guard.record("probe", true, 1, 1);
    expect(guard.plan()).toBe("plain");
  });

  it("drafting that beats plain steps by less than the margin is a tie, and a tie stops it", () => {
    const plans = drive(new SpeculationGuard(), 40, 10 * (1 - MARGIN / 2), 1);
    expect(plans.slice(0, 4)).toEqual(["plain", "plain", "draft", "draft"]);
    expect(plans.slice(4).filter((p) => p === "draft")).toHaveLength(0);
  });

  it("drafting that lost waits until its loss is PROBE_BUDGET of the plain time since; a run that paid asks again after 4 plain steps", () => {
    const guard = new SpeculationGuard();
    drive(guard, 4, 10.1, 1); // two plain steps, two drafting steps losing 0.1 ms each: off, the minimum wait
    const probeAfter = () => plainStepsUntilProbe(guard);
    expect(probeAfter()).toBe(4);
    guard.record("probe", true, 12, 3); // wins: drafting on
    expect(guard.plan()).toBe("draft");
    guard.record("draft", true, 40, 2); // ...and loses at once: off; the run took 52 ms for 5 tokens, 2 ms (0.2 steps) too many
    expect(guard.plan()).toBe("plain");
    const waited = probeAfter();
    expect(waited).toBeGreaterThanOrEqual(0.2 / PROBE_BUDGET);
    expect(waited).toBeLessThanOrEqual(0.2 / PROBE_BUDGET + 1); // floating point
    guard.record("probe", true, 12, 3);
    for (let i = 0; i < 20; i++) guard.record(guard.plan(), guard.plan() !== "plain", 12, guard.plan() === "plain" ? 1 : 3); // a sustained winning run
    guard.record("draft", true, 80, 2);
    guard.record("draft", true, 80, 2); // then the text changes and drafting loses: off; the run paid as a whole
    expect(probeAfter()).toBe(4);
  });

  it("what a paying run saved pays for later losses first: losing probes then come after 4 plain steps until the bank (4 plain steps) is spent", () => {
    const guard = new SpeculationGuard();
    drive(guard, 4, 10.1, 1); // off at once, nothing banked
    const probeAfter = () => plainStepsUntilProbe(guard);
    probeAfter();
    guard.record("probe", true, 12, 3); // wins: drafting on
    for (let i = 0; i < 10; i++) guard.record("draft", true, 12, 3); // saves 17.1 ms a step beyond the margin: the bank fills to 40 ms
    guard.record("draft", true, 80, 2);
    guard.record("draft", true, 80, 2); // off; the run paid as a whole
    expect(probeAfter()).toBe(4);
    // Each losing probe costs 15 ms (25 ms for one token): the 40 ms bank pays two, then the third's 5 ms left waits 0.5 / PROBE_BUDGET steps.
    guard.record("probe", true, 25, 1);
    expect(probeAfter()).toBe(4);
    guard.record("probe", true, 25, 1);
    expect(probeAfter()).toBe(4);
    guard.record("probe", true, 25, 1);
    const waited = probeAfter();
    expect(waited).toBeGreaterThanOrEqual(0.5 / PROBE_BUDGET);
    expect(waited).toBeLessThanOrEqual(0.5 / PROBE_BUDGET + 1);
    // The bank is spent: a fourth loss waits for all of its 1.5 steps.
    guard.record("probe", true, 25, 1);
    expect(probeAfter()).toBeGreaterThanOrEqual(1.5 / PROBE_BUDGET);
  });

  it("gains within the margin bank nothing: after a run that only tied, a losing probe waits its whole loss", () => {
    const guard = new SpeculationGuard();
    drive(guard, 4, 10.1, 1);
    const probeAfter = () => plainStepsUntilProbe(guard);
    probeAfter();
    guard.record("probe", true, 19, 2); // wins by 5%: drafting on
    guard.record("draft", true, 19.6, 2);
    guard.record("draft", true, 19.6, 2); // 2% under plain: a tie, off; the run paid, so the next probe comes after 4 steps
    expect(probeAfter()).toBe(4);
    guard.record("probe", true, 25, 1); // loses 15 ms: nothing banked to pay it
    expect(probeAfter()).toBeGreaterThanOrEqual(1.5 / PROBE_BUDGET);
  });

  it("a plain step far above the plain average (preempted) counts as 1.5 times the average, so it cannot make drafting look cheap", () => {
    const guard = new SpeculationGuard();
    guard.record("plain", false, 10, 1);
    guard.record("plain", false, 10, 1);
    guard.record("plain", false, 200, 1); // a 190 ms preemption: counted as 15 ms
    // Drafting at 13 ms a token beats neither 10 nor the clipped average (about 11.6): it stops.
    const plans = drive(guard, 20, 13, 1);
    expect(plans.slice(0, 2)).toEqual(["draft", "draft"]);
    expect(plans.slice(2)).not.toContain("draft");
  });

  it("is kept per target and source", () => {
    const [a, b] = [{}, {}];
    expect(guardFor(a, "lookup 3")).toBe(guardFor(a, "lookup 3"));
    expect(guardFor(a, "lookup 3")).not.toBe(guardFor(a, "lookup 2"));
    expect(guardFor(a, "lookup 3")).not.toBe(guardFor(b, "lookup 3"));
  });
});

describe("the guard on real sessions", () => {
  const models = referencePair();

  it("an unrelated draft model (never right) drafts in a few probes only, over two requests", async () => {
    const generator = new Generator(models.target);
    const prompt = [7, 101, 33, 250, 12, 90];
    const plain = await generator.run(prompt, { maxTokens: 48, eosTokenIds: [] });
    let drafting = 0;
    for (let request = 0; request < 2; request++) {
      const result = await generator.run(prompt, { maxTokens: 48, eosTokenIds: [], speculate: { kind: "draft", model: models.draft } });
      expect(result.tokens).toEqual(plain.tokens);
      drafting += result.stats.speculative!.callsWithDraft;
    }
    // Two losing steps, then probes 4, 8, 16, 32, 64 plain steps apart: at most 6 a request,
    // whatever the timings say. Whether it drafts at all depends on the measured call costs (a
    // draft that cannot pay even at full acceptance is never asked), so no lower bound here: the
    // decisions themselves are tested exactly, from made-up timings, above.
    expect(drafting).toBeLessThanOrEqual(12);
  });
});
