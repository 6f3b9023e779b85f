// Test support: greedy speculation must give plain decoding's tokens, token for token, for
// every chain draft source (lossless-greedy.test.ts, recurrent-rollback.test.ts), on open and
// grounded prompts (token-recycling.test.ts uses the same prompts).
import { expect } from "vitest";
import type { DecoderModel } from "../../runtime/decoder.ts";
import { isRuntimeError } from "../../runtime/errors.ts";
import { Generator, type GenerateOptions } from "../../runtime/generate.ts";
import type { SpeculateOptions } from "../../runtime/speculative/speculator.ts";
import type { SpeculativeStats } from "../../runtime/speculative/stats.ts";

export const NEW_TOKENS = 24;

/** Every draft source and length policy; `draft` is a different model with the same vocabulary, `self` the target itself. */
function sources(draft: DecoderModel, self: DecoderModel): Record<string, SpeculateOptions> {
  return {
    "lookup k=4": { kind: "lookup", draftLength: 4 },
    "lookup adaptive": { kind: "lookup" },
    "draft k=3": { kind: "draft", model: draft, draftLength: 3 },
    "draft adaptive": { kind: "draft", model: draft },
    "self-draft k=5": { kind: "draft", model: self, draftLength: 5 },
    "self-draft adaptive": { kind: "draft", model: self },
  };
}

/** Open prompts, plus grounded ones: the prompt, its greedy continuation, the prompt again (the answer repeats the context). */
export async function losslessPrompts(generator: Generator, V: number, count: number): Promise<number[][]> {
  const open = Array.from({ length: count }, (_, i) => Array.from({ length: 5 + i }, (_, j) => (i * 97 + j * 31 + 3) % V));
  const grounded: number[][] = [];
  for (const prompt of open.slice(0, Math.ceil(count / 2))) {
    const { tokens } = await generator.run(prompt, { maxTokens: 12, eosTokenIds: [] });
    grounded.push([...prompt, ...tokens, ...prompt]);
  }
  return [...open.slice(0, count - grounded.length), ...grounded];
}

/** Runs `count` prompts plainly and with every source, expecting the same tokens; returns the speculative stats per source. */
export async function expectLossless(target: DecoderModel, draft: DecoderModel, count: number): Promise<Map<string, SpeculativeStats[]>> {
  const generator = new Generator(target);
  const byName = new Map<string, SpeculativeStats[]>();
  for (const prompt of await losslessPrompts(generator, target.contract.vocabSize ?? 256, count)) {
    const plain = await generator.run(prompt, { maxTokens: NEW_TOKENS, eosTokenIds: [] });
    for (const [name, speculate] of Object.entries(sources(draft, target))) {
      const result = await generator.run(prompt, { maxTokens: NEW_TOKENS, eosTokenIds: [], speculate });
      expect(result.tokens, `${name}, prompt ${prompt.join(" ")}`).toEqual(plain.tokens);
      expect(result.finishReason).toBe("max-tokens");
      const { policy, guard, targetCalls, replayCalls } = result.stats.speculative!;
      // The adaptive guard decides every step (and says so); a fixed length leaves it out.
      expect(policy).toBe(speculate.draftLength === undefined ? "adaptive" : "fixed");
      expect(guard.draftSteps + guard.plainSteps + guard.probes).toBe(policy === "adaptive" ? targetCalls - replayCalls : 0);
      byName.set(name, [...(byName.get(name) ?? []), result.stats.speculative!]);
    }
  }
  return byName;
}

/** A counter summed over runs. */
export function total(stats: readonly SpeculativeStats[], key: "acceptedTokens" | "draftedTokens" | "replayCalls" | "targetCalls"): number {
  return stats.reduce((s, x) => s + x[key], 0);
}

/** A short generation that must be refused: the RuntimeError's code, its message checked to be one line. */
export async function refusalCode(model: DecoderModel, speculate: GenerateOptions["speculate"], temperature?: number): Promise<string | undefined> {
  try {
    await new Generator(model).run([1, 2], { maxTokens: 4, sampling: { temperature }, speculate });
  } catch (e) {
    expect(String((e as Error).message)).not.toContain("\n");
    if (isRuntimeError(e)) return e.code;
    throw e;
  }
  return undefined;
}
