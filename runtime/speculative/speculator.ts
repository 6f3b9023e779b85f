// One speculative step on the target: draft after the decided token, score the token and
// the draft in one call, keep the verified prefix (rolling the target's KV back to it) and
// hand out the accepted tokens plus the target's own next token.
import type * as ort from "onnxruntime-node";
import type { DecoderModel, DecoderSequence, TopTokens } from "../decoder.ts";
import { RuntimeError } from "../errors.ts";
import type { LogitsProcessor } from "../sampling/processors.ts";
import { createRng, type Rng } from "../sampling/rng.ts";
import { argmax, type SamplingConfig } from "../sampling/sampler.ts";
import { floatData, readFloatRow } from "../tensors.ts";
import { knownCost, measureCost, NOMINAL_COST, NOMINAL_DRAFT_TOKEN, type CostModel } from "./cost-model.ts";
import { AcceptanceEstimate, ADAPTIVE_DEFAULTS, bestLength, type AdaptiveLength } from "./draft-length.ts";
import { DraftModel } from "./draft-model.ts";
import { guardFor, PROBE_TOKENS, SpeculationGuard, type StepPlan } from "./guard.ts";
import { NO_DRAFT, type Draft, type DraftSource } from "./draft-source.ts";
import { PromptLookup } from "./prompt-lookup.ts";
import { keepVerified } from "./recurrent-rollback.ts";
import { SpeculativeTally, type SpeculativeStats } from "./stats.ts";
import { verifyGreedy, verifySampled, type Verdict } from "./verify.ts";
import { createWarp, softmaxInPlace, type Warp } from "./warp.ts";

interface CommonSpeculateOptions {
  /**
   * Draft tokens per step: a number verifies exactly that many (fewer when the source has
   * fewer); "adaptive" (the default) lets the draft's confidence and the measured cost decide.
   */
  draftLength?: number | "adaptive";
  /** Bounds and threshold of the adaptive rule (defaults: threshold 0.3, min 2, max 20). */
  adaptive?: Partial<AdaptiveLength>;
  /**
   * What a step costs the adaptive guard, in milliseconds. Default: its wall time (the process's
   * CPU time would ignore waiting for a core, but reading it next to a session call costs a
   * noticeable share of a tiny model's step). A caller that knows its costs better supplies them
   * here; the guard is then this request's own rather than the one shared across requests.
   */
  stepCost?: (step: MeasuredStep) => number;
}

/** One speculative step as the guard sees it. */
export interface MeasuredStep {
  /** Draft tokens verified (0: a plain step). */
  drafted: number;
  /** Tokens the step decided (accepted draft tokens plus the target's own). */
  decided: number;
  /** Its wall time in milliseconds, drafting and rollback included. */
  ms: number;
}

export interface LookupSpeculation extends CommonSpeculateOptions {
  kind: "lookup";
  /** Longest n-gram matched against the context (default 3). */
  maxNgram?: number;
}

export interface DraftModelSpeculation extends CommonSpeculateOptions {
  kind: "draft";
  /** A decoder with the target's vocabulary (a smaller model, or a self-draft made by a pass). */
  model: DecoderModel;
}

export type SpeculateOptions = LookupSpeculation | DraftModelSpeculation;

export class Speculator {
  private readonly tally = new SpeculativeTally();
  private readonly acceptance = new AcceptanceEstimate();
  private readonly fixed?: number;
  private readonly rule: AdaptiveLength;
  private cost?: CostModel;
  /** What one more draft token costs, in the cost model's units. */
  private draftTokenMs = 0;
  /** Adaptive only: whether drafting pays, from timed steps. */
  private readonly guard?: SpeculationGuard;
  /** Prices steps for the guard instead of their measured cost (see `stepCost`). */
  private readonly price?: (step: MeasuredStep) => number;
  /** Adaptive only, once the costs are measured: could this source pay even if every draft token were accepted? */
  private canPay?: boolean;
  private readonly row: Float32Array;
  /** The draft model, whose cost is measured with the target's. */
  private readonly draftModel?: DecoderModel;

  private constructor(
    private readonly sequence: DecoderSequence,
    private readonly source: DraftSource,
    private readonly warp: Warp,
    private readonly rng: Rng,
    options: SpeculateOptions,
    private readonly vocabSize: number,
    guard: SpeculationGuard,
    priced: boolean,
  ) {
    this.rule = { ...ADAPTIVE_DEFAULTS, ...options.adaptive };
    if (options.kind === "draft") this.draftModel = options.model;
    // A seeded sampled run must replay exactly, on any machine, and which steps draft (and how
    // many tokens) changes the random draws: its steps are priced, and its lengths chosen, at
    // nominal costs rather than measured ones.
    if (priced) this.useCosts(NOMINAL_COST, source.measure ? NOMINAL_DRAFT_TOKEN : 0);
    this.price = options.stepCost ?? (priced ? (step) => this.cost!.callMs(step.drafted + 1) + step.drafted * this.draftTokenMs : undefined);
    const length = options.draftLength ?? "adaptive";
    if (length !== "adaptive") {
      if (!Number.isInteger(length) || length < 1) throw new RuntimeError("bad-speculation", `draftLength must be a positive integer or "adaptive", got ${length}`);
      this.fixed = length;
    } else {
      this.guard = guard;
    }
    if (!(this.rule.threshold > 0 && this.rule.threshold < 1) || !(this.rule.min >= 1 && this.rule.max >= this.rule.min)) {
      throw new RuntimeError("bad-speculation", `adaptive draft length needs 0 < threshold < 1 and 1 <= min <= max, got ${JSON.stringify(this.rule)}`);
    }
    this.row = new Float32Array(vocabSize);
  }

  /** For the target `sequence` (its prompt already run), drafting as `options` say, sampling as `sampling` says. */
  static create(sequence: DecoderSequence, vocabSize: number, options: SpeculateOptions, sampling: SamplingConfig = {}, processors: readonly LogitsProcessor[] = []): Speculator {
    const seed = sampling.seed ?? Math.floor(Math.random() * 2 ** 32);
    const warp = createWarp(sampling, vocabSize, processors);
    const length = options.draftLength ?? "adaptive";
    const source: DraftSource =
      options.kind === "lookup"
        ? new PromptLookup(options.maxNgram ?? 3)
        : new DraftModel(options.model, vocabSize, createWarp(sampling, vocabSize, processors), createRng(seed ^ 0x5bd1e995), length === "adaptive" ? { ...ADAPTIVE_DEFAULTS, ...options.adaptive } : undefined);
    const priced = !warp.greedy && sampling.seed !== undefined;
    const guard = priced || options.stepCost ? new SpeculationGuard() : guardFor(sequence.model, options.kind === "lookup" ? `lookup ${options.maxNgram ?? 3}` : options.model);
    return new Speculator(sequence, source, warp, createRng(seed ^ 0x2545f491), options, vocabSize, guard, priced);
  }

  /**
   * `token` is decided and is the last of `context`, but not yet in the target's cache. Runs
   * it with a draft of at most `limit` tokens; returns the accepted draft tokens and the next
   * decided token.
   */
  async step(token: number, context: readonly number[], limit: number): Promise<number[]> {
    if (this.guard && limit >= 1 && !this.cost) await this.measureCosts(token, context);
    const t0 = performance.now();
    const plan = this.guard?.plan() ?? "draft";
    // No promise to wait for when nothing is drafted: on a tiny model every microtask shows.
    const draft = this.drafts(plan, limit) ? await this.draft(plan, context, limit) : NO_DRAFT;
    const k = draft.tokens.length;
    if (k === 0) {
      // Nothing to verify: the plain runtime's step (the same call, the same fetch, no copies).
      const next = await this.plainStep(token, context);
      const ms = performance.now() - t0;
      this.tally.record(0, 0, ms);
      if (this.guard) this.tally.decided("plain", this.guard.record(plan, false, this.price ? this.price({ drafted: 0, decided: 1, ms }) : ms, 1));
      return [next];
    }
    const start = this.sequence.length;
    const t1 = performance.now();
    const output = await this.run([token, ...draft.tokens]);
    const verdict = "ids" in output ? verifyGreedyIds(draft.tokens, output) : this.verify(output, draft, context);
    const replayed = await keepVerified(this.sequence, start, [token, ...draft.tokens], 1 + verdict.accepted);
    this.tally.record(k, verdict.accepted, performance.now() - t1, replayed);
    this.acceptance.record(k, verdict.accepted);
    const ms = performance.now() - t0;
    if (this.guard) this.tally.decided(plan, this.guard.record(plan, true, this.price ? this.price({ drafted: k, decided: verdict.accepted + 1, ms }) : ms, verdict.accepted + 1));
    return [...draft.tokens.slice(0, verdict.accepted), verdict.next];
  }

  /** Runs `tokens` on the target: the argmax ids where they suffice and are the cheaper fetch, else the logits. */
  private run(tokens: readonly number[]): Promise<TopTokens | ort.Tensor> {
    return this.warp.argmaxOnly ? this.sequence.forwardIdsOrLogits(tokens, 1) : this.sequence.forward(tokens);
  }

  /** One token, no draft. */
  private async plainStep(token: number, context: readonly number[]): Promise<number> {
    const output = await this.run([token]);
    if ("ids" in output) return output.ids[0]!;
    if (!this.warp.argmaxOnly) return this.verify(output, NO_DRAFT, context).next;
    this.checkVocabulary(output);
    readFloatRow(floatData(output), 0, this.row);
    return argmax(this.row);
  }

  stats(generatedTokens: number): SpeculativeStats {
    return this.tally.summary(this.source.name, this.source.draftMs, generatedTokens);
  }

  async release(): Promise<void> {
    await this.source.release();
  }

  /** Once per model (kept across requests): call costs of the target and of a draft model. */
  private async measureCosts(token: number, context: readonly number[]): Promise<void> {
    if (this.cost) return;
    const t0 = performance.now();
    const unknown = [this.sequence.model, this.draftModel].some((m) => m !== undefined && !knownCost(m));
    const cost = await measureCost(this.sequence, token, this.rule.max + 1, this.warp.argmaxOnly);
    await this.source.measure?.(context);
    if (unknown) this.tally.measureMs += performance.now() - t0;
    this.useCosts(cost, this.source.msPerToken);
  }

  private useCosts(cost: CostModel, draftTokenMs: number): void {
    this.cost = cost;
    this.draftTokenMs = draftTokenMs;
    this.canPay = bestLength(Array(this.rule.max).fill(1), cost, draftTokenMs) > 0;
  }

  /**
   * A fixed length drafts that many tokens every step. The adaptive policy drafts only when the
   * guard says so (a source too slow to pay even at full acceptance, a draft as slow as the
   * target, never); the cost model and the draft's confidence bound the length.
   */
  private drafts(plan: StepPlan, limit: number): boolean {
    return limit >= 1 && (this.fixed !== undefined || (plan !== "plain" && this.canPay === true));
  }

  /** The draft of a step that `drafts`: the fixed length, a probe's, or the adaptive policy's. */
  private async draft(plan: StepPlan, context: readonly number[], limit: number): Promise<Draft> {
    if (this.fixed !== undefined) return this.source.propose(context, Math.min(this.fixed, limit));
    const cap = Math.min(this.rule.max, limit);
    const k = plan === "probe" ? Math.min(PROBE_TOKENS, cap) : Math.max(Math.min(this.rule.min, cap), bestLength(Array(cap).fill(this.acceptance.alpha), this.cost!, this.draftTokenMs));
    const draft = await this.source.propose(context, k);
    // The draft is made (its cost is spent); keep the prefix whose confidence still pays for its verification.
    if (!draft.confidence) return draft;
    const keep = Math.max(1, bestLength(draft.confidence, this.cost!, 0));
    return keep >= draft.tokens.length ? draft : { tokens: draft.tokens.slice(0, keep), probs: draft.probs?.slice(0, keep), confidence: draft.confidence.slice(0, keep) };
  }

  private checkVocabulary(logits: ort.Tensor): number {
    const V = logits.dims[logits.dims.length - 1]!;
    if (V !== this.vocabSize) throw new RuntimeError("vocabulary-changed", `the target's logits cover ${V} token ids, not the ${this.vocabSize} its first call returned`);
    return V;
  }

  private verify(logits: ort.Tensor, draft: Draft, context: readonly number[]): Verdict {
    const V = this.checkVocabulary(logits);
    const data = floatData(logits);
    if (this.warp.argmaxOnly) {
      // Nothing processes the rows: no context to build.
      return verifyGreedy(draft.tokens, (i) => {
        readFloatRow(data, i * V, this.row);
        return argmax(this.row);
      });
    }
    // Row i is warped against the context plus the first i draft tokens: one array, cut and
    // refilled per row, instead of a copy of the whole context per row.
    const seen = [...context];
    const processed = (i: number): Float32Array => {
      readFloatRow(data, i * V, this.row);
      seen.length = context.length;
      for (let j = 0; j < i; j++) seen.push(draft.tokens[j]!);
      this.warp.process(this.row, { tokens: seen });
      return this.row;
    };
    if (this.warp.greedy) return verifyGreedy(draft.tokens, (i) => argmax(processed(i)));
    return verifySampled(draft.tokens, draft.probs, (i) => softmaxInPlace(processed(i)), this.rng);
  }
}

/** Greedy verification from the graph's own argmax per row (no logits cross to the host). */
function verifyGreedyIds(draft: readonly number[], top: TopTokens): Verdict {
  return verifyGreedy(draft, (row) => top.ids[row * top.k]!);
}
