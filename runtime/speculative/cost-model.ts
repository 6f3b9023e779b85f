// What one target call costs as a function of the tokens it verifies, measured on this
// machine. On a GPU verifying 20 tokens costs about what verifying one does; on a CPU the
// cost grows with them, so the draft length that pays must come from a measurement.
import type { DecoderModel, DecoderSequence } from "../decoder.ts";

export class CostModel {
  constructor(
    /** Cost of a call independent of its size (session overhead, weights read once). */
    readonly fixedMs: number,
    readonly perTokenMs: number,
  ) {}

  callMs(tokens: number): number {
    return this.fixedMs + this.perTokenMs * tokens;
  }

  /** Least-squares line through (tokens, ms) samples; slope and intercept kept non-negative. */
  static fit(samples: readonly { tokens: number; ms: number }[]): CostModel {
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
 * Costs in units of one target call, the same on every machine, for runs whose decisions must
 * not depend on timing: a seeded sampled run drafts (and so draws) as these prices say, where
 * measured costs would make its tokens depend on the machine and its load. Each token a call
 * verifies adds 5%, the slope measured here at small sizes (sotu-tiny 3.5%, stories260K 4-5% a
 * token).
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

/**
 * Times calls of 1 .. maxTokens tokens on `sequence` (rolled back after each) and fits the line;
 * once per model, so later requests reuse it. The fastest of a few runs per size counts: on a
 * shared machine other work only ever adds time.
 */
export async function measureCost(sequence: DecoderSequence, token: number, maxTokens: number, idsOnly = false): Promise<CostModel> {
  const known = measured.get(sequence.model);
  if (known) return known;
  const start = sequence.length;
  const room = sequence.model.maxPositions === undefined ? maxTokens : sequence.model.maxPositions - start;
  maxTokens = Math.max(1, Math.min(maxTokens, room));
  const sizes = [...new Set([1, 2, 4, 8, 16, 32].filter((s) => s < maxTokens).concat(maxTokens))];
  const samples: { tokens: number; ms: number }[] = [];
  // `idsOnly`: steps will fetch the graph's argmax rather than logits, so time those calls.
  const call = (size: number) => (idsOnly ? sequence.forwardIdsOrLogits(Array(size).fill(token), 1) : sequence.forward(Array(size).fill(token)));
  await call(maxTokens); // warm-up: first calls at a new size allocate
  sequence.truncate(start);
  for (const size of sizes) {
    const times: number[] = [];
    for (let r = 0; r < 5; r++) {
      // A verification call is charged with its rollback (on a present-style cache, a copy of every kept row).
      const t0 = performance.now();
      await call(size);
      sequence.truncate(start);
      times.push(performance.now() - t0);
    }
    samples.push({ tokens: size, ms: Math.min(...times) });
  }
  const model = CostModel.fit(samples);
  measured.set(sequence.model, model);
  return model;
}
