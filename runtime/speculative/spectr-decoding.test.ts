// SpecTr decoding through real onnxruntime sessions: a zoo llama compiled with the
// tree-attention-mask pass as the target, k drafts sampled i.i.d. from another model (a second
// zoo llama of the same vocabulary: q differs from p, so drafts are accepted and rejected) or
// from the target's own weights (q = p: every draft token accepted). Checked: after each step the
// cache is exactly the decided context (the next logits equal a from-scratch run on the
// original model), a step's first token follows the target's warped softmax (chi-square), and
// the refusals are one line.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { llamaConfig, writeZooModel } from "../../graph/zoo/index.ts";
import { tempDir } from "../../test/helpers/tmp.ts";
import { compileTree } from "../../test/helpers/tree-target.ts";
import { DecoderModel } from "../decoder.ts";
import { Generator } from "../generate.ts";
import { floatData } from "../tensors.ts";
import { goodnessOfFit } from "../../test/helpers/chi-square.ts";
import { lastLogitsFromScratch } from "../../test/helpers/runtime-models.ts";
import { SpecTrDecoding } from "./spectr-decoding.ts";

const OPEN = { device: "cpu" as const, threads: 1 };
const PROMPT = [5, 17, 200, 42, 9, 100, 5, 17];
const SAMPLING = { temperature: 0.7, seed: 11 };

describe("SpecTr decoding on a tree-mask target", () => {
  const dir = tempDir("pipec-spectr-");
  let target: DecoderModel, original: DecoderModel, other: DecoderModel;
  let V: number;
  beforeAll(async () => {
    const originalPath = writeZooModel(llamaConfig({ seed: 5 }), join(dir, "target")).modelPath;
    [target, original, other] = await Promise.all(
      [compileTree(originalPath), originalPath, writeZooModel(llamaConfig({ seed: 6 }), join(dir, "draft")).modelPath].map((path) => DecoderModel.open(path, OPEN)),
    );
    V = target.contract.vocabSize!;
  });
  afterAll(async () => {
    await Promise.all([target, original, other].map((m) => m?.release()));
  });

  it("after every step the cache holds exactly the decided tokens", async () => {
    const sequence = target.newSequence();
    await sequence.advance(PROMPT.slice(0, -1));
    const context = [...PROMPT];
    const spectr = SpecTrDecoding.create(sequence, V, { kind: "spectr", model: other, drafts: 3, draftLength: 3 }, SAMPLING);
    for (let step = 0; step < 10; step++) {
      context.push(...(await spectr.step(context[context.length - 1]!, context, 3)));
      expect(sequence.length).toBe(context.length - 1);
      const next = floatData(await sequence.forward([context[context.length - 1]!]));
      const expected = await lastLogitsFromScratch(original.session, context);
      for (let v = 0; v < V; v++) expect(Math.abs(next[v]! - expected[v]!), `step ${step}, token ${v}`).toBeLessThan(1e-3);
      sequence.truncate(context.length - 1);
    }
    const stats = spectr.stats(context.length - PROMPT.length);
    expect(stats.source).toBe("spectr");
    expect(stats.targetCalls).toBe(10);
    expect(stats.acceptedTokens).toBeGreaterThan(0);
    expect(stats.acceptedTokens).toBeLessThan(30);
    await spectr.release();
  });

  it("drafts from the target's own weights are all accepted", async () => {
    const result = await new Generator(target).run(PROMPT, { maxTokens: 20, eosTokenIds: [], sampling: SAMPLING, speculate: { kind: "spectr", model: original, drafts: 2, draftLength: 4 } });
    const stats = result.stats.speculative!;
    expect(result.tokens).toHaveLength(20);
    // The prefill decides one token, each call its accepted drafts plus one: 19 tokens in 4 calls of at most 5.
    expect(1 + stats.acceptedTokens + stats.targetCalls).toBe(20);
    expect(stats.targetCalls).toBe(4);
  });

  it("a step's first token follows the target's warped softmax", async () => {
    const sequence = target.newSequence();
    await sequence.advance(PROMPT.slice(0, -1));
    const start = sequence.length;
    const logits = floatData(await sequence.forward([PROMPT[PROMPT.length - 1]!]));
    sequence.truncate(start);
    const scaled = Array.from(logits, (x) => x / SAMPLING.temperature);
    const max = Math.max(...scaled);
    const weights = scaled.map((x) => Math.exp(x - max));
    const total = weights.reduce((a, b) => a + b);
    const p = weights.map((w) => w / total);
    const spectr = SpecTrDecoding.create(sequence, V, { kind: "spectr", model: other, drafts: 4, draftLength: 2 }, SAMPLING);
    const counts = new Map<number, number>();
    for (let i = 0; i < 1000; i++) {
      const [first] = await spectr.step(PROMPT[PROMPT.length - 1]!, PROMPT, 2);
      counts.set(first!, (counts.get(first!) ?? 0) + 1);
      sequence.truncate(start);
    }
    await spectr.release();
    const pValue = goodnessOfFit(counts, p);
    if (!(pValue > 1e-3)) console.error(`chi-square p-value ${pValue}`);
    expect(pValue).toBeGreaterThan(1e-3);
  });

  it("refuses greedy decoding and a target without the tree mask, in one line", async () => {
    expect(() => SpecTrDecoding.create(target.newSequence(), V, { kind: "spectr", model: other }, {})).toThrow(/^spectr samples k drafts i\.i\.d\.: it needs sampled decoding/);
    expect(() => SpecTrDecoding.create(original.newSequence(), V, { kind: "spectr", model: other }, SAMPLING)).toThrow(/compile the target with the tree-attention-mask pass/);
  });
});
