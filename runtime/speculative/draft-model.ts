// A second, cheaper decoder with the target's vocabulary proposes the draft (a smaller
// model, or a layer-skipped self-draft made by a compiler pass: either is just a model
// file). Its KV cache follows the decided context: before each draft it is cut back to the
// longest prefix it shares with the context, and only the tokens after that are fed. The cache
// outlives the request: the next request on the same draft model takes it over, so a prompt
// that repeats or extends the last context (a chat's next turn, a retried request) does not
// feed the shared prefix again in its first draft.
import type { DecoderModel, DecoderSequence } from "../decoder.ts";
import { RuntimeError } from "../errors.ts";
import { argmax } from "../sampling/sampler.ts";
import type { Rng } from "../sampling/rng.ts";
import { floatData, readFloatRow } from "../tensors.ts";
import { measureCost, type CostModel } from "./cost-model.ts";
import { shouldStop, type AdaptiveLength } from "./draft-length.ts";
import { NO_DRAFT, type Draft, type DraftSource } from "./draft-source.ts";
import { DraftRewind } from "./recurrent-rollback.ts";
import { sampleProbabilities } from "./verify.ts";
import { softmaxInPlace, type Warp } from "./warp.ts";

/** A draft model's sequence and the tokens its cache holds, in order. */
interface DraftCache {
  sequence: DecoderSequence;
  held: number[];
  rewind: DraftRewind;
}

/**
 * Per draft model, the cache the last request left. One only: requests that run at the same
 * time each get their own, and a second idle cache would keep memory for a rare case.
 */
const idle = new WeakMap<DecoderModel, DraftCache>();

function takeCache(model: DecoderModel): DraftCache {
  const kept = idle.get(model);
  if (kept) {
    idle.delete(model);
    return kept;
  }
  const sequence = model.newSequence();
  return { sequence, held: [], rewind: new DraftRewind(sequence) };
}

export class DraftModel implements DraftSource {
  readonly name = "draft";
  draftMs = 0;
  private cost?: CostModel;
  private readonly sequence: DecoderSequence;
  /** The tokens the draft's cache holds, in order. */
  private held: number[];
  private readonly rewind: DraftRewind;

  constructor(
    readonly model: DecoderModel,
    private readonly vocabSize: number,
    private readonly warp: Warp,
    /** Draws sampled drafts; unused when the warp is greedy. */
    private readonly rng: Rng,
    /** SpecDec++ stopping rule; absent: draft exactly as many tokens as asked. */
    private readonly adaptive?: AdaptiveLength,
  ) {
    checkDraftVocabulary(model.contract.vocabSize, vocabSize);
    ({ sequence: this.sequence, held: this.held, rewind: this.rewind } = takeCache(model));
  }

  /** One draft token is one call of the draft model on one token. */
  get msPerToken(): number {
    return this.cost?.callMs(1) ?? 0;
  }

  async measure(context: readonly number[]): Promise<void> {
    this.cost ??= await measureCost(this.sequence, context[0], 4);
  }

  async propose(context: readonly number[], maxTokens: number): Promise<Draft> {
    const room = this.model.maxPositions === undefined ? maxTokens : Math.min(maxTokens, this.model.maxPositions - context.length);
    if (room < 1) return NO_DRAFT;
    const t0 = performance.now();
    let common = 0;
    while (common < this.held.length && common < context.length && this.held[common] === context[common]) common++;
    // At least one token must be fed to get the next row; recurrent state may go back further.
    common = this.rewind.rewind(Math.min(common, context.length - 1));
    this.held = context.slice(0, common);

    const tokens: number[] = [];
    const probs: Float32Array[] = [];
    const confidence: number[] = [];
    const row = new Float32Array(this.vocabSize);
    let feed = context.slice(common);
    const seen = [...context]; // the context plus the tokens drafted so far, for the warp's processors
    let cumulative = 1;
    for (;;) {
      const logits = await this.sequence.forward(feed);
      this.held.push(...feed);
      if (tokens.length === 0) this.rewind.remember(); // the context is in, no draft token yet
      const V = logits.dims[logits.dims.length - 1];
      checkDraftVocabulary(V, this.vocabSize);
      readFloatRow(floatData(logits), (logits.dims[1] - 1) * V, row);
      this.warp.process(row, { tokens: seen });
      let token: number;
      if (this.warp.greedy) {
        token = argmax(row);
        confidence.push(softmaxInPlace(row)[token]);
      } else {
        const q = softmaxInPlace(Float32Array.from(row));
        token = sampleProbabilities(q, this.rng);
        probs.push(q);
        confidence.push(q[token]);
      }
      tokens.push(token);
      seen.push(token);
      cumulative *= confidence[confidence.length - 1];
      if (tokens.length >= room) break;
      if (this.adaptive && shouldStop(tokens.length, cumulative, this.adaptive)) break;
      feed = [token];
    }
    this.draftMs += performance.now() - t0;
    return this.warp.greedy ? { tokens, confidence } : { tokens, probs, confidence };
  }

  /** Hands the cache on to the next request on this draft model. */
  async release(): Promise<void> {
    idle.set(this.model, { sequence: this.sequence, held: this.held, rewind: this.rewind });
  }
}

function checkDraftVocabulary(draft: number | undefined, target: number): void {
  if (draft !== undefined && draft !== target) {
    throw new RuntimeError("draft-vocabulary-mismatch", `the draft model's logits cover ${draft} token ids but the target's cover ${target}; a draft model must share the target's tokenizer and vocabulary`);
  }
}
