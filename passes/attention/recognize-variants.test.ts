import { describe, expect, it } from "vitest";
import { buildZooModel } from "../../graph/zoo/index.ts";
import { modelBytes } from "../../test/helpers/ort-parity.ts";
import { findAttentionBlocks } from "./index.ts";
import { liftAttention } from "./lift.ts";
import { lowerAttention } from "./lower.ts";
import { maxDifference, prefillAndDecode } from "../../test/helpers/two-step-parity.ts";
import { attentionVariant, VARIANT_CONFIGS, type AttentionVariant } from "../../test/helpers/attention-variants.ts";

/**
 * The recognition rules (recognize.ts) on seeded random spellings of the zoo models' attention
 * (test/helpers/attention-variants.ts): every layer of every variant is found with its heads, KV heads (the
 * cache's), scale and cache names. A sample is run: the variant computes what the zoo model does,
 * and lift + lower leaves its outputs unchanged. A miss prints the seed and the spelling.
 */
const VARIANTS = 500;
const RUN_EVERY = 25;

function reproducer(v: AttentionVariant, problem: string): string {
  const layers = v.choices.map((c, i) => `  layer ${i}: ${c.join("; ")}`).join("\n");
  return `variant seed ${v.seed} (${v.config}): ${problem}\n${layers}\nreproduce: attentionVariant(${v.seed}) in test/helpers/attention-variants.ts`;
}

/** What is wrong with the recognition of `v`, or undefined. */
function misrecognition(v: AttentionVariant): string | undefined {
  const report = findAttentionBlocks(v.model);
  if (report.unrecognised.length > 0) return `not recognised: ${report.unrecognised.map((u) => `${u.node}: ${u.reason}`).join(" | ")}`;
  if (report.layers.length !== v.expected.length) return `${report.layers.length} layers found, ${v.expected.length} expected`;
  for (const [i, layer] of report.layers.entries()) {
    const e = v.expected[i]!;
    const found = { heads: layer.num_heads, kvHeads: layer.kv_num_heads, pastKey: layer.past_key, presentValue: layer.present_value };
    const want = { heads: e.heads, kvHeads: e.kvHeads, pastKey: e.pastKey, presentValue: e.presentValue };
    if (JSON.stringify(found) !== JSON.stringify(want)) return `layer ${i} recognised as ${JSON.stringify(found)}, expected ${JSON.stringify(want)}`;
    if (Math.abs(layer.scale - e.scale) > 1e-6 * e.scale) return `layer ${i} scale ${layer.scale}, expected ${e.scale}`;
  }
  return undefined;
}

describe("attention recognition on random spellings of the zoo models", () => {
  it(`recognises every layer of ${VARIANTS} seeded variants`, () => {
    const failures: string[] = [];
    for (let seed = 0; seed < VARIANTS; seed++) {
      const v = attentionVariant(seed);
      const problem = misrecognition(v);
      if (problem) failures.push(reproducer(v, problem));
    }
    expect(failures.length === 0 ? "" : `${failures.length} of ${VARIANTS} variants not recognised as expected; the first:\n${failures.slice(0, 5).join("\n\n")}`).toBe("");
  });

  it(`runs every ${RUN_EVERY}th variant: it computes what the zoo model does, and lift + lower keeps its outputs`, async () => {
    const reference = new Map<string, Awaited<ReturnType<typeof prefillAndDecode>>>();
    for (const [name, config] of Object.entries(VARIANT_CONFIGS)) reference.set(name, await prefillAndDecode(modelBytes(buildZooModel(config, { encoding: "standard" }))));
    for (let seed = 0; seed < VARIANTS; seed += RUN_EVERY) {
      const v = attentionVariant(seed);
      const spelled = await prefillAndDecode(modelBytes(v.model));
      expect(maxDifference(reference.get(v.config)!, spelled), reproducer(v, "the variant does not compute what the zoo model does")).toBeLessThanOrEqual(1e-4);
      expect(liftAttention(v.model).rewrites, reproducer(v, "lift-attention missed layers")).toBe(v.expected.length);
      expect(lowerAttention(v.model)).toBe(v.expected.length);
      expect(maxDifference(spelled, await prefillAndDecode(modelBytes(v.model))), reproducer(v, "lift + lower changed the outputs")).toBeLessThanOrEqual(1e-5);
    }
  });
});
