// Sampled speculative decoding (temperature > 0) on a model with recurrent state (LFM2's
// past_conv.*): every rejection sends the target back to its state before the verification
// call and replays the accepted tokens (recurrent-rollback.ts), and a draft model with
// recurrent state rewinds to its snapshot. Checked for every chain draft source on what can go
// wrong: the state after each step (the next logits equal a from-scratch run over the decided
// tokens), seeded replay (one seed, one output), and the law of the tokens (a step's first token
// follows the target's warped softmax).
//
// The shared LFM2 fixture cannot show any of it: its logits read the current token's embedding
// alone (the convolution is an Identity, the attention's output unused) and are nearly uniform.
// The target here is the fixture with logits that read its state: the last 4 embeddings, held
// in a working past_conv.0 (a short convolution, as LFM2's), plus the running sum of layer 1's
// cached keys (every token so far), scaled so the softmax has a shape (top token ~0.2 at T = 1).
// A rejected token left in either state, or a decided one missing, moves every later logit.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Builder } from "../../graph/ir/builder.ts";
import type { Model } from "../../graph/ir/model.ts";
import { loadModel, saveModel } from "../../graph/onnx/index.ts";
import { tempDir } from "../../test/helpers/tmp.ts";
import { DecoderModel } from "../decoder.ts";
import { Generator } from "../generate.ts";
import { createRng } from "../sampling/rng.ts";
import type { SamplingConfig } from "../sampling/sampler.ts";
import { floatData } from "../tensors.ts";
import { goodnessOfFit } from "../../test/helpers/chi-square.ts";
import { HAVE_SHARED, lastLogitsFromScratch, NO_SHARED, SHARED_DECODERS } from "../../test/helpers/runtime-models.ts";
import { DraftModel } from "./draft-model.ts";
import { Speculator, type SpeculateOptions } from "./speculator.ts";
import type { SpeculativeStats } from "./stats.ts";
import { sampleProbabilities } from "./verify.ts";
import { createWarp } from "./warp.ts";

const OPEN = { device: "cpu" as const, threads: 1 };
const WINDOW = 4; // the fixture's conv_cache_size: past_conv.0 is [B, C, 4]
const TARGET_SCALE = 600;
/** The draft is the same construction, flatter: q correlates with p but differs, so drafts are accepted and rejected. */
const DRAFT_SCALE = 300;
/** Repeats itself, so prompt lookup finds drafts. */
const PROMPT = [5, 17, 300, 42, 9, 600, 5, 17, 300];
const STEPS = 12;
const SAMPLES = 2000;

/** The LFM2 fixture with logits = scale * (sum of the last 4 embeddings + 1/4 of the running sum of layer 1's keys). */
function stateReading(model: Model, scale: number): Model {
  const g = model.graph;
  const b = new Builder(g);
  const producer = (name: string) => g.nodeArray().find((n) => n.outputs.some((o) => o?.name === name))!;
  const end = b.int64([2 ** 62]);
  const seqAxis = b.int64([2]);
  // The convolution state: past_conv.0 [B, C, 4] followed by this call's embeddings [B, C, S], its last 4 columns kept.
  const all = b.op.Concat(g.lookup("past_conv.0")!, b.op.Transpose(g.lookup("embeddings")!, { perm: [0, 2, 1] }), { axis: 2 });
  producer("present_conv.0").setInput(0, b.op.Slice(all, b.int64([-WINDOW]), end, seqAxis));
  // Row i sums columns i+1 .. i+4 of `all`: token i and the 3 before it.
  const sums = b.op.CumSum(all, b.int64(2));
  const window = b.op.Sub(b.op.Slice(sums, b.int64([WINDOW]), end, seqAxis), b.op.Slice(sums, b.int64([0]), b.int64([-WINDOW]), seqAxis));
  // The attention cache: present.1.key [B, Hkv, T, D] holds every token's key; row i reads the sum of keys 0 .. P + i.
  const S = b.op.Slice(b.op.Shape(g.lookup("input_ids")!), b.int64([1]), b.int64([2]), b.int64([0]));
  const running = b.op.Slice(b.op.CumSum(g.lookup("present.1.key")!, b.int64(2)), b.op.Neg(S), end, seqAxis); // [B, Hkv, S, D]
  const history = b.op.Reshape(b.op.Transpose(running, { perm: [0, 2, 1, 3] }), b.int64([0, 0, -1])); // [B, S, C]
  const hidden = b.op.Add(b.op.Transpose(window, { perm: [0, 2, 1] }), b.op.Mul(history, b.float32(0.25)));
  producer("logits").setInput(0, b.op.Mul(hidden, b.float32(scale)));
  return model;
}

/** softmax(logits / temperature), in float64. */
function softmax(logits: ArrayLike<number>, temperature: number): Float64Array {
  const p = Float64Array.from(logits, (x) => x / temperature);
  const max = Math.max(...p);
  let total = 0;
  for (let v = 0; v < p.length; v++) total += p[v] = Math.exp(p[v]! - max);
  return p.map((x) => x / total);
}

describe.skipIf(!HAVE_SHARED)(`sampled speculation with recurrent state (LFM2)${HAVE_SHARED ? "" : ` (${NO_SHARED})`}`, () => {
  const dir = tempDir("pipec-sampled-recurrent-");
  let target: DecoderModel;
  let draft: DecoderModel;
  let fixture: DecoderModel;
  let qwen: DecoderModel;
  let V: number;
  beforeAll(async () => {
    saveModel(stateReading(loadModel(SHARED_DECODERS.lfm2), TARGET_SCALE), join(dir, "target.onnx"));
    saveModel(stateReading(loadModel(SHARED_DECODERS.lfm2), DRAFT_SCALE), join(dir, "draft.onnx"));
    [target, draft, fixture, qwen] = await Promise.all([join(dir, "target.onnx"), join(dir, "draft.onnx"), SHARED_DECODERS.lfm2, SHARED_DECODERS.qwen35].map((path) => DecoderModel.open(path, OPEN)));
    V = target.contract.vocabSize!;
  });
  afterAll(async () => {
    await Promise.all([target, draft, fixture, qwen].map((model) => model?.release()));
  });

  /** Every chain source on this target: lookup, draft models with and without recurrent state (same 1000-token vocabulary), the target itself. */
  const sources = (): Record<string, SpeculateOptions> => ({
    "lookup k=4": { kind: "lookup", draftLength: 4 },
    "lookup adaptive (seeded: steps priced at nominal costs)": { kind: "lookup" },
    "draft k=3 (the flatter variant)": { kind: "draft", model: draft, draftLength: 3 },
    "draft k=3 (the plain fixture: q nearly uniform)": { kind: "draft", model: fixture, draftLength: 3 },
    "draft k=3 (the Qwen fixture: no recurrent state, fp16 logits)": { kind: "draft", model: qwen, draftLength: 3 },
    "self-draft k=4": { kind: "draft", model: target, draftLength: 4 },
  });

  /**
   * Speculative steps from PROMPT; after each, the next logits (the last decided token fed, then
   * undone) must equal a from-scratch run over every decided token: no rejected token left in
   * the KV cache or the convolution state, no accepted one missing.
   */
  async function checkedSteps(speculate: SpeculateOptions, sampling: SamplingConfig, label: string): Promise<SpeculativeStats> {
    const sequence = target.newSequence();
    await sequence.advance(PROMPT.slice(0, -1));
    const context = [...PROMPT];
    const speculator = Speculator.create(sequence, V, speculate, sampling);
    try {
      for (let step = 0; step < STEPS; step++) {
        const decided = await speculator.step(context[context.length - 1]!, context, 4);
        context.push(...decided);
        expect(sequence.length).toBe(context.length - 1);
        const next = floatData(await sequence.forward([context[context.length - 1]!]));
        expectClose(next, await lastLogitsFromScratch(target.session, context), `${label}, step ${step}, context ${context.join(" ")}`);
        sequence.truncate(context.length - 1); // undoes that one call, recurrent state included
      }
      return speculator.stats(context.length - PROMPT.length);
    } finally {
      await speculator.release();
    }
  }

  /** What each source's rejections look like over the checked runs. */
  const expectations: Record<string, "all accepted" | "some accepted" | "some rejected"> = {
    "lookup k=4": "some rejected",
    "lookup adaptive (seeded: steps priced at nominal costs)": "some rejected",
    "draft k=3 (the flatter variant)": "some accepted",
    "draft k=3 (the plain fixture: q nearly uniform)": "some rejected",
    "draft k=3 (the Qwen fixture: no recurrent state, fp16 logits)": "some rejected",
    "self-draft k=4": "all accepted",
  };
  for (const [name, expectation] of Object.entries(expectations)) {
    it(`${name}: after every step the state equals a from-scratch run (T 0.7 and 1, 3 seeds each)`, async () => {
      const runs: SpeculativeStats[] = [];
      for (const temperature of [0.7, 1]) {
        for (const seed of [1, 2, 3]) runs.push(await checkedSteps(sources()[name]!, { temperature, seed }, `${name}, T ${temperature}, seed ${seed}`));
      }
      const sum = (key: "draftedTokens" | "acceptedTokens" | "replayCalls") => runs.reduce((s, r) => s + r[key], 0);
      expect(sum("draftedTokens")).toBeGreaterThan(0);
      if (expectation === "all accepted") {
        // q = p: every draft token is accepted, so the verification call's state is kept as it is.
        expect(sum("acceptedTokens")).toBe(sum("draftedTokens"));
        expect(sum("replayCalls")).toBe(0);
        return;
      }
      // Rejections happened and were rolled back by replay; with a draft close to the target, after accepted tokens too.
      expect(sum("acceptedTokens")).toBeLessThan(sum("draftedTokens"));
      expect(sum("replayCalls")).toBeGreaterThan(0);
      if (expectation === "some accepted") expect(sum("acceptedTokens")).toBeGreaterThan(0);
    });
  }

  it("a draft model with recurrent state drafts from the decided context after rejections: every q equals its from-scratch softmax", async () => {
    // A wrong draft state cannot make the output wrong (verification judges each token by the q it was drawn from), only rarer accepted: checked here directly.
    const source = new DraftModel(draft, V, createWarp({ temperature: 1 }, V), createRng(5));
    const context = [...PROMPT];
    try {
      for (let step = 0; step < 6; step++) {
        const { tokens, probs } = await source.propose(context, 3);
        expect(tokens).toHaveLength(3);
        for (let i = 0; i < tokens.length; i++) {
          expectClose(probs![i]!, softmax(await lastLogitsFromScratch(draft.session, [...context, ...tokens.slice(0, i)]), 1), `step ${step}, draft token ${i}`);
        }
        // The target keeps step % 3 draft tokens and decides another of its own: the draft's cache held rejected tokens.
        const kept = step % 3;
        context.push(...tokens.slice(0, kept), (tokens[kept]! + 1) % V);
      }
    } finally {
      await source.release();
    }
  });

  it("one seed, one output: every source twice through the Generator (the draft's cache carried over), another seed differs", async () => {
    // One model object: the adaptive sources' step prices come from a cost model timed once per
    // model, so a second session of the same file may draft on other steps and draw other tokens.
    const generator = new Generator(target);
    const all: Record<string, SpeculateOptions> = { ...sources(), "draft adaptive": { kind: "draft", model: draft } };
    let replays = 0;
    for (const [name, speculate] of Object.entries(all)) {
      const run = (seed: number) => generator.run(PROMPT, { maxTokens: 16, eosTokenIds: [], sampling: { temperature: 1, seed }, speculate });
      const first = await run(7);
      expect((await run(7)).tokens, name).toEqual(first.tokens);
      expect((await run(8)).tokens, name).not.toEqual(first.tokens);
      replays += first.stats.speculative!.replayCalls;
    }
    expect(replays).toBeGreaterThan(0); // the replayed runs went through rejections
  });

  /**
   * A context after which prompt lookup proposes a token the target finds likely (a lookup draft
   * the target never picks would leave the acceptance path unchecked): [5, x, ..., 5], lookup's
   * draft is x, and x is the likeliest such token among the target's top guesses.
   */
  async function lookupPrompt(temperature: number): Promise<number[]> {
    const rest = [17, 300, 42, 9, 600];
    const probe = softmax(await lastLogitsFromScratch(target.session, [5, ...rest, 5]), temperature);
    const candidates = [...probe.keys()].sort((a, b) => probe[b]! - probe[a]!).slice(0, 8);
    let best = { prompt: [] as number[], p: -1 };
    for (const x of candidates) {
      const prompt = [5, x, ...rest, 5];
      const p = softmax(await lastLogitsFromScratch(target.session, prompt), temperature)[x]!;
      if (p > best.p) best = { prompt, p };
    }
    expect(best.p).toBeGreaterThan(0.05);
    return best.prompt;
  }

  const laws: { name: string; speculate: () => SpeculateOptions; temperature: number; prompt: (temperature: number) => Promise<number[]> }[] = [
    { name: "draft k=2 (sampled q, the flatter variant)", speculate: () => ({ kind: "draft", model: draft, draftLength: 2 }), temperature: 1, prompt: async () => PROMPT },
    { name: "lookup k=2 (one-hot q)", speculate: () => ({ kind: "lookup", draftLength: 2 }), temperature: 0.7, prompt: lookupPrompt },
  ];
  for (const { name, speculate, temperature, prompt: promptFor } of laws) {
    it(`${name}, T ${temperature}: a step's first token follows the target's softmax (chi-square, ${SAMPLES} steps from one state)`, async () => {
      const prompt = await promptFor(temperature);
      const sequence = target.newSequence();
      await sequence.advance(prompt.slice(0, -1));
      const start = sequence.snapshot();
      const speculator = Speculator.create(sequence, V, speculate(), { temperature, seed: 11 });
      const counts = new Map<number, number>();
      try {
        for (let i = 0; i < SAMPLES; i++) {
          const [first] = await speculator.step(prompt[prompt.length - 1]!, prompt, 2);
          counts.set(first!, (counts.get(first!) ?? 0) + 1);
          sequence.restore(start);
        }
      } finally {
        await speculator.release();
      }
      const p = softmax(await lastLogitsFromScratch(target.session, prompt), temperature);
      expect(goodnessOfFit(counts, p)).toBeGreaterThan(1e-3);
      const stats = speculator.stats(SAMPLES);
      expect(stats.acceptedTokens).toBeGreaterThan(0);
      expect(stats.replayCalls).toBeGreaterThan(0);
    });
  }

  it("the chi-square has power: the flatter draft's own law (what accepting every draft would give) fails it at the same sample count", async () => {
    const p = softmax(await lastLogitsFromScratch(target.session, PROMPT), 1);
    const q = Float32Array.from(softmax(await lastLogitsFromScratch(draft.session, PROMPT), 1));
    const rng = createRng(12);
    const counts = new Map<number, number>();
    for (let i = 0; i < SAMPLES; i++) {
      const token = sampleProbabilities(q, rng);
      counts.set(token, (counts.get(token) ?? 0) + 1);
    }
    expect(goodnessOfFit(counts, p)).toBeLessThan(1e-6);
  });
});

/** Within 1e-4 of the row's largest magnitude, position by position. */
function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, label: string): void {
  expect(actual.length, label).toBe(expected.length);
  let scale = 0;
  let worst = 0;
  for (let v = 0; v < expected.length; v++) {
    scale = Math.max(scale, Math.abs(expected[v]!));
    worst = Math.max(worst, Math.abs(actual[v]! - expected[v]!));
  }
  expect(worst, label).toBeLessThanOrEqual(1e-4 * scale);
}
