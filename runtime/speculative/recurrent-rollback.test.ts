// Speculation on models with recurrent state (LFM2's past_conv.*): chain verification keeps
// the state from before the call and replays the accepted tokens on partial acceptance, so
// greedy output equals plain decoding token for token; Token Recycling's tree is refused.
//
// The shared LFM2 fixture's convolution is an Identity (present_conv = past_conv, zeros
// forever), so on it alone a rollback that forgot the state would still pass. The tests also
// run a variant whose present_conv.0 holds the last 4 tokens' embeddings and whose logits are
// read from their sum (a short convolution, as LFM2's): there a rejected draft token left in
// the state changes the next tokens.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Builder } from "../../graph/ir/builder.ts";
import type { Model } from "../../graph/ir/model.ts";
import { loadModel, saveModel } from "../../graph/onnx/index.ts";
import { tempDir } from "../../test/helpers/tmp.ts";
import { DecoderModel } from "../decoder.ts";
import { isRuntimeError } from "../errors.ts";
import { Generator } from "../generate.ts";
import { argmax } from "../sampling/sampler.ts";
import { floatData } from "../tensors.ts";
import { HAVE_SHARED, lastLogitsFromScratch, NO_SHARED, SHARED_DECODERS } from "../../test/helpers/runtime-models.ts";
import { expectLossless, NEW_TOKENS, total } from "../../test/helpers/lossless.ts";
import { Speculator } from "./speculator.ts";

const OPEN = { device: "cpu" as const, threads: 1 };
const WINDOW = 4; // the fixture's conv_cache_size: past_conv.0 is [B, 32, 4]

/** The LFM2 fixture with a working short convolution in layer 0: the state is the last 4 embeddings, the logits read their sum. */
function withConvolution(model: Model): Model {
  const g = model.graph;
  const b = new Builder(g);
  const producer = (name: string) => g.nodeArray().find((n) => n.outputs.some((o) => o?.name === name))!;
  const past = g.lookup("past_conv.0")!; // [B, C, 4]
  const embeddings = g.lookup("embeddings")!; // [B, S, C]
  const all = b.op.Concat(past, b.op.Transpose(embeddings, { perm: [0, 2, 1] }), { axis: 2 }); // [B, C, 4 + S]
  const end = b.int64([2 ** 62]);
  const axis = b.int64([2]);
  producer("present_conv.0").setInput(0, b.op.Slice(all, b.int64([-WINDOW]), end, axis));
  // Row i sums columns i+1 .. i+4 of `all`: token i and the 3 before it, from the state where the call starts.
  const sums = b.op.CumSum(all, b.int64(2));
  const window = b.op.Sub(b.op.Slice(sums, b.int64([WINDOW]), end, axis), b.op.Slice(sums, b.int64([0]), b.int64([-WINDOW]), axis));
  producer("logits").setInput(0, b.op.Transpose(window, { perm: [0, 2, 1] }));
  return model;
}

describe.skipIf(!HAVE_SHARED)(`speculation with recurrent state (LFM2)${HAVE_SHARED ? "" : ` (${NO_SHARED})`}`, () => {
  const dir = tempDir("pipec-recurrent-");
  const convPath = join(dir, "lfm2-conv.onnx");
  let fixture: DecoderModel;
  let conv: DecoderModel;
  beforeAll(async () => {
    saveModel(withConvolution(loadModel(SHARED_DECODERS.lfm2)), convPath);
    [fixture, conv] = await Promise.all([DecoderModel.open(SHARED_DECODERS.lfm2, OPEN), DecoderModel.open(convPath, OPEN)]);
  });
  afterAll(async () => {
    await Promise.all([fixture?.release(), conv?.release()]);
  });

  it("the variant's state matters: plain decoding equals recomputation from scratch and differs from the Identity fixture", async () => {
    const prompt = [5, 17, 300, 42, 9, 600];
    const plain = await new Generator(conv).run(prompt, { maxTokens: 8, eosTokenIds: [] });
    const tokens = [...prompt];
    for (let i = 0; i < 8; i++) tokens.push(argmaxOf(await lastLogitsFromScratch(conv.session, tokens)));
    expect(plain.tokens).toEqual(tokens.slice(prompt.length));
    const identity = await new Generator(fixture).run(prompt, { maxTokens: 8, eosTokenIds: [] });
    expect(identity.tokens).not.toEqual(plain.tokens);
  });

  it("after every step the next logits equal a from-scratch run on the decided context (a rejecting draft: rollback by replay)", async () => {
    const sequence = conv.newSequence();
    const V = conv.contract.vocabSize!;
    const prompt = [3, 34, 65, 96, 127];
    const logits = await sequence.forward(prompt);
    let token = argmax(floatData(logits).subarray((prompt.length - 1) * V) as Float32Array);
    const context = [...prompt, token];
    const speculator = Speculator.create(sequence, V, { kind: "draft", model: fixture, draftLength: 4 });
    for (let step = 0; step < 6; step++) {
      const decided = await speculator.step(token, context, 4);
      expect(sequence.length).toBe(context.length + decided.length - 1);
      context.push(...decided);
      token = decided[decided.length - 1]!;
      const next = floatData(await sequence.forward([token]));
      const expected = await lastLogitsFromScratch(conv.session, context);
      for (let v = 0; v < V; v++) expect(Math.abs(next[v]! - expected[v]!)).toBeLessThan(1e-4);
      sequence.truncate(context.length - 1); // undoes that one call, recurrent state included
    }
    const stats = speculator.stats(0);
    expect(stats.acceptedTokens).toBeLessThan(stats.draftedTokens);
    expect(stats.replayCalls).toBeGreaterThan(0);
  });

  for (const [name, target, draft] of [["the shared fixture (Identity conv)", () => fixture, () => conv], ["the variant with a working conv", () => conv, () => fixture]] as const) {
    it(`${name}: 6 prompts x 6 chain sources equal plain decoding; drafts accepted, partial acceptances replayed`, async () => {
      const stats = await expectLossless(target(), draft(), 6);
      const lookup = stats.get("lookup k=4")!;
      expect(total(lookup, "acceptedTokens")).toBeGreaterThan(0);
      expect(total(lookup, "replayCalls")).toBeGreaterThan(0);
      // The target drafting for itself is always right: no replay, several tokens per call.
      const self = stats.get("self-draft k=5")!;
      expect(total(self, "acceptedTokens")).toBe(total(self, "draftedTokens"));
      expect(total(self, "replayCalls")).toBe(0);
      expect(total(self, "targetCalls")).toBeLessThan((6 * NEW_TOKENS) / 3);
      const other = stats.get("draft k=3")!;
      expect(total(other, "replayCalls")).toBeGreaterThan(0);
    });
  }

  it("a sequence with recurrent state cuts back only its latest call", async () => {
    const sequence = conv.newSequence();
    await sequence.forward([1, 2, 3]);
    await sequence.forward([4, 5]);
    expect(() => sequence.truncate(2)).toThrow(/cannot be cut to 2 tokens/);
    sequence.truncate(3);
    expect(sequence.length).toBe(3);
    expect(() => sequence.truncate(0)).toThrow(/only its latest call can be undone/);
  });

  it("Token Recycling is refused in one line naming the recurrent state", async () => {
    let error: unknown;
    try {
      await new Generator(fixture).run([1, 2, 3], { maxTokens: 4, eosTokenIds: [], speculate: { kind: "recycle" } });
    } catch (e) {
      error = e;
    }
    expect(isRuntimeError(error) && error.code).toBe("cannot-speculate");
    const message = String((error as Error).message);
    expect(message).not.toContain("\n");
    expect(message).toContain("past_conv.0");
  });
});

function argmaxOf(row: Float64Array): number {
  let best = 0;
  for (let v = 1; v < row.length; v++) if (row[v]! > row[best]!) best = v;
  return best;
}
