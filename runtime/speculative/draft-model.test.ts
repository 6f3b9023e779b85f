// The draft model's cache outlives a request: the next request on the same draft model takes it
// over and feeds only what its context does not share with the cache, and output stays greedy's.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DecoderModel, type DecoderSequence } from "../decoder.ts";
import { Generator } from "../generate.ts";
import { REFERENCE_DIR } from "../../test/helpers/runtime-models.ts";

const PROMPT = [7, 101, 33, 250, 12, 90, 41, 8, 77, 5];
const MODEL = join(REFERENCE_DIR, "llama-torchscript/model.onnx");

describe("a draft model's cache across requests", () => {
  let target: DecoderModel;
  let draft: DecoderModel;
  /** Tokens fed to the draft model and sequences it opened, counted at its sequences' calls. */
  const fed = { tokens: 0, sequences: 0 };
  beforeAll(async () => {
    target = await DecoderModel.open(MODEL, { device: "cpu", threads: 1 });
    // The target drafting for itself, from a second session: every draft token is accepted.
    draft = await DecoderModel.open(MODEL, { device: "cpu", threads: 1 });
    const open = draft.newSequence.bind(draft);
    draft.newSequence = (): DecoderSequence => {
      const sequence = open();
      const forward = sequence.forward.bind(sequence);
      sequence.forward = (tokens) => {
        fed.tokens += tokens.length;
        return forward(tokens);
      };
      fed.sequences++;
      return sequence;
    };
  });
  afterAll(async () => {
    await target?.release();
    await draft?.release();
  });

  it("a repeated prompt feeds the draft no prompt token again; a prompt that extends the last context feeds only its new tokens", async () => {
    const generator = new Generator(target);
    const speculate = { kind: "draft" as const, model: draft, draftLength: 3 };
    const plain = await generator.run(PROMPT, { maxTokens: 24, eosTokenIds: [] });

    const first = await generator.run(PROMPT, { maxTokens: 24, eosTokenIds: [], speculate });
    expect(first.tokens).toEqual(plain.tokens);
    expect(first.stats.speculative!.callsWithDraft).toBeGreaterThan(0);
    const firstFed = fed.tokens;
    // The first draft fed the whole prompt and the first decided token.
    expect(firstFed).toBeGreaterThanOrEqual(PROMPT.length + 1);

    fed.tokens = 0;
    const again = await generator.run(PROMPT, { maxTokens: 24, eosTokenIds: [], speculate });
    expect(again.tokens).toEqual(plain.tokens);
    expect(fed.sequences).toBe(1);
    // The same drafts from a cache that already holds the prompt and the first request's tokens
    // (cut back to the prompt plus the first decided token, which it shares): exactly the first
    // request's feed less the prompt.
    expect(fed.tokens).toBe(firstFed - PROMPT.length);

    // The next turn: the whole last context plus two new tokens.
    const next = [...PROMPT, ...plain.tokens, 3, 9];
    const plainNext = await generator.run(next, { maxTokens: 12, eosTokenIds: [] });
    fed.tokens = 0;
    const turn = await generator.run(next, { maxTokens: 12, eosTokenIds: [], speculate });
    expect(turn.tokens).toEqual(plainNext.tokens);
    expect(fed.sequences).toBe(1);
    const fresh = { ...fed };
    // Against a draft that starts empty (a second request at the same time gets its own cache).
    const busy = generator.run(next, { maxTokens: 12, eosTokenIds: [], speculate });
    const concurrent = generator.run(next, { maxTokens: 12, eosTokenIds: [], speculate });
    expect((await busy).tokens).toEqual(plainNext.tokens);
    expect((await concurrent).tokens).toEqual(plainNext.tokens);
    expect(fed.sequences).toBe(2);
    // The whole next turn fed the draft less than its prompt alone: its first draft fed only
    // what the cache lacked (the two new tokens and the first decided one), not the 36-token context.
    expect(fresh.tokens).toBeLessThan(next.length);
  });
});
