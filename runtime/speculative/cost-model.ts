// What one target call costs as a function of the tokens it verifies, measured on this
// machine. On a GPU verifying 20 tokens costs about what verifying one does; on a CPU the
// cost grows with them, so the draft length that pays must come from a measurement.
// Two shapes are fitted to the same timings: a line (CostModel) for drafts of a few tokens,
// and a curve through every size (MeasuredCost) for token trees, where attention over a large
// tree grows faster than linearly.
import type { DecoderModel, DecoderSequence } from "../decoder.ts";

/** Milliseconds of one target call as a function of the tokens it verifies. */
export interface CallCost {
  callMs(tokens: number): number;
}

/** How long one call of `tokens` tokens took (the fastest of a few runs). */
export interface CostSample {
  tokens: number;
  ms: number;
}

export class CostModel implements CallCost {
  constructor(
    /** Cost of a call independent of its size (session overhead, weights read once). */
    readonly fixedMs: number,
    readonly perTokenMs: number,
  ) {}

  callMs(tokens: number): number {
    return this.fixedMs + this.perTokenMs * tokens;
  }

  /** Least-squares line through (tokens, ms) samples; slope and intercept kept non-negative. */
  static fit(samples: readonly CostSample[]): CostModel {
    const n = samples.length;
    const mx = samples.reduce((s, x) => s + x.tokens, 0) / n;
    const my = samples.reduce((s, x) => s + x.ms, 0) / n;
    let sxy = 0;
    let sxx = 0;
    for (const { tokens, ms } of samples) {
      sxy += (tokens - mx) * (ms - my);
      sxx += (tokens - mx) ** 2;
    }
    const slope = Math.max(0, sxx > 0 ? sxy / sxx : 0);
    return new CostModel(Math.max(my - slope * mx, 1e-3), slope);
  }
}

/**
 * The cost of a call measured at sizes 1 .. maxTokens on this machine and interpolated between
 * them. Not a line: a line fitted to every size of a large tree misprices the small trees that
 * pay. Measured once per model (Token Recycling keeps it, recycling-state.ts).
 */
export class MeasuredCost implements CallCost {
  constructor(readonly samples: readonly CostSample[]) {}

  callMs(tokens: number): number {
    const s = this.samples;
    let i = 1;
    while (i < s.length - 1 && s[i]!.tokens < tokens) i++;
    const [a, b] = [s[i - 1]!, s[i]!];
    return a.ms + ((b.ms - a.ms) * (tokens - a.tokens)) / (b.tokens - a.tokens);
  }

  /** `topK`: the successors a step recycles (steps fetch only those ids when the graph offers them). */
  static async measure(sequence: DecoderSequence, token: number, maxTokens: number, topK: number): Promise<MeasuredCost> {
    // Beyond the positions left, the curve extends its last segment.
    maxTokens = Math.min(maxTokens, roomFor(sequence, maxTokens));
    if (maxTokens < 2) throw new RangeError("measuring call costs needs room for two tokens");
    const sizes = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96];
    // Timed as steps run: ids only when the graph offers the top-k the matrix stores.
    const samples = await timeCalls(sequence, sizes, maxTokens, (size) => sequence.forwardIdsOrLogits(Array(size).fill(token), topK), 3);
    return new MeasuredCost(samples);
  }
}

/**
 * Costs in units of one target call, the same on every machine, for runs whose decisions must
 * not depend on timing: a seeded sampled run drafts (and so draws) as these prices say, where
 * measured costs would make its tokens depend on the machine and its load. The slope is the
 * one tiny models show (bench/README.md).
 */
export const NOMINAL_COST = new CostModel(1, 0.05);
/** A draft model's token at nominal prices: a tenth of a target call. */
export const NOMINAL_DRAFT_TOKEN = 0.1;

const measured = new WeakMap<DecoderModel, CostModel>();

/** The cost line measured for `model` in this process or restored from a warm-state file (warm-state.ts); undefined before either. */
export function knownCost(model: DecoderModel): CostModel | undefined {
  return measured.get(model);
}

/** Takes `cost` as `model`'s measurement (warm-state.ts restores a persisted one): no request measures it again. */
export function rememberCost(model: DecoderModel, cost: CostModel): void {
  measured.set(model, cost);
}

/** Times calls of 1 .. maxTokens tokens on `sequence` and fits the line; once per model, so later requests reuse it. */
export async function measureCost(sequence: DecoderSequence, token: number, maxTokens: number, idsOnly = false): Promise<CostModel> {
  const known = measured.get(sequence.model);
  if (known) return known;
  maxTokens = Math.max(1, Math.min(maxTokens, roomFor(sequence, maxTokens)));
  // `idsOnly`: steps will fetch the graph's argmax rather than logits, so time those calls.
  const call = (size: number) => (idsOnly ? sequence.forwardIdsOrLogits(Array(size).fill(token), 1) : sequence.forward(Array(size).fill(token)));
  const model = CostModel.fit(await timeCalls(sequence, [1, 2, 4, 8, 16, 32], maxTokens, call, 5));
  measured.set(sequence.model, model);
  return model;
}

/** Positions left after `sequence`'s context, or `wanted` for a model without a limit. */
function roomFor(sequence: DecoderSequence, wanted: number): number {
  return sequence.model.maxPositions === undefined ? wanted : sequence.model.maxPositions - sequence.length;
}

/**
 * The fastest of `runs` timings of `call` at each of `sizes` below `maxTokens`, and at
 * `maxTokens`, each rolled back after it. The fastest counts: on a shared machine other work
 * only ever adds time. A first call at `maxTokens` warms up (first calls at a new size allocate).
 */
async function timeCalls(sequence: DecoderSequence, sizes: readonly number[], maxTokens: number, call: (size: number) => Promise<unknown>, runs: number): Promise<CostSample[]> {
  const start = sequence.length;
  await call(maxTokens);
  sequence.truncate(start);
  const samples: CostSample[] = [];
  for (const size of new Set(sizes.filter((s) => s < maxTokens).concat(maxTokens))) {
    let fastest = Infinity;
    for (let r = 0; r < runs; r++) {
      // A verification call is charged with its rollback (on a present-style cache, a copy of every kept row).
      const t0 = performance.now();
      await call(size);
      sequence.truncate(start);
      fastest = Math.min(fastest, performance.now() - t0);
    }
    samples.push({ tokens: size, ms: fastest });
  }
  return samples;
}
