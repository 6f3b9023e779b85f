// Every family in every attention encoding must compute the same function: prefill plus three
// decode steps with the cache fed back agree with the decomposed encoding within 1e-4.

import { describe, expect, it } from "vitest";
import { buildZooModel, ENCODINGS, gpt2Config, llamaConfig, type ZooConfig } from "../graph/zoo/index.ts";
import { argmax, CachedDecoder, lastRow, maxAbsDiff, modelToBytes, type StepResult } from "./helpers/zoo-decode.ts";

const CONFIGS: Record<string, ZooConfig> = {
  "llama GQA, interleaved rotary": llamaConfig({ rotary: "interleaved", heads: 4, kvHeads: 2 }),
  "llama GQA, half-split rotary": llamaConfig({ rotary: "half", heads: 4, kvHeads: 2 }),
  "llama with head dim 8 (rotary outside GroupQueryAttention)": llamaConfig({ rotary: "interleaved", hidden: 64, heads: 8, kvHeads: 4 }),
  "qwen2 (q/k/v bias, tied embeddings)": llamaConfig({ qkvBias: true, tiedEmbeddings: true, heads: 4, kvHeads: 1, seed: 7 }),
  gpt2: gpt2Config(),
};

const PROMPT = [1, 17, 42, 9, 200, 33];

/** Prefill, then three greedy decode steps; returns each step's logits. */
async function run(config: ZooConfig, encoding: (typeof ENCODINGS)[number]): Promise<StepResult[]> {
  const decoder = await CachedDecoder.open(modelToBytes(buildZooModel(config, { encoding })));
  try {
    const steps = [await decoder.step(PROMPT)];
    for (let i = 0; i < 3; i++) steps.push(await decoder.step([argmax(lastRow(steps[steps.length - 1]))]));
    return steps;
  } finally {
    await decoder.release();
  }
}

describe("zoo encodings agree", () => {
  for (const [name, config] of Object.entries(CONFIGS)) {
    it(name, async () => {
      const reference = await run(config, "decomposed");
      expect(reference[0].logits.length).toBe(PROMPT.length * config.vocabSize);
      expect(reference.map((s) => s.cacheLength)).toEqual([0, 1, 2, 3].map((i) => PROMPT.length + i));
      for (const encoding of ENCODINGS.filter((e) => e !== "decomposed")) {
        const steps = await run(config, encoding);
        steps.forEach((s, i) => {
          expect(maxAbsDiff(s.logits, reference[i].logits), `${encoding}, step ${i}`).toBeLessThan(1e-4);
          // present is the past plus this step, not a max-length buffer, in every encoding.
          expect(s.cacheLength, `${encoding}, step ${i}`).toBe(reference[i].cacheLength);
        });
      }
    });
  }

  it("the two rotary layouts really differ (the test above would notice a swapped layout)", async () => {
    const half = await run(llamaConfig({ rotary: "half" }), "decomposed");
    const interleaved = await run(llamaConfig({ rotary: "interleaved" }), "decomposed");
    expect(maxAbsDiff(half[0].logits, interleaved[0].logits)).toBeGreaterThan(1e-2);
  });
});
