import { readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import type { Model } from "../../graph/ir/model.ts";
import { loadModel } from "../../graph/onnx/index.ts";
import { buildZooModel, gpt2Config, llamaConfig, type AttentionEncoding, type ZooConfig } from "../../graph/zoo/index.ts";
import { HAVE_SHARED, SHARED_FIXTURES, sharedOnnxFiles, SKIP_SHARED_REASON } from "../../test/helpers/fixtures.ts";
import { modelBytes } from "../../test/helpers/ort-parity.ts";
import { CANONICAL_DOMAIN } from "./canonical.ts";
import { isCanonical, readCanonical } from "./canonical-node.ts";
import { liftAttention } from "./lift.ts";
import { lowerAttention } from "./lower.ts";
import { maxDifference, prefillAndDecode } from "../../test/helpers/two-step-parity.ts";

/**
 * Lift then lower on every encoding we can get: recognition finds exactly the model's attention
 * layers (counted per rule), and outputs of a prefill and a decode step (cache fed back) stay
 * within 1e-5 of the original (float16 models within their precision).
 */
async function expectLiftLowerExact(model: Model, layers: number, rule: string, tolerance = 1e-5): Promise<void> {
  const before = await prefillAndDecode(modelBytes(model));
  const stats = liftAttention(model);
  expect(stats.rules.find((r) => r.rule === rule)?.rewritten).toBe(layers);
  expect(stats.rewrites).toBe(layers);
  const canonical = model.graph.nodeArray().filter(isCanonical);
  expect(canonical.map((n) => readCanonical(n).layer).sort()).toEqual([...Array(layers).keys()]);
  expect(model.opset(CANONICAL_DOMAIN)).toBe(layers > 0 ? 1 : undefined);
  expect(lowerAttention(model)).toBe(layers);
  expect(model.graph.nodeArray().some(isCanonical)).toBe(false);
  const after = await prefillAndDecode(modelBytes(model));
  expect(maxDifference(before, after)).toBeLessThanOrEqual(tolerance);
}

const RULE: Record<AttentionEncoding, (c: ZooConfig) => string> = {
  decomposed: () => "lift-decomposed-attention",
  ms: (c) => (c.family === "llama" ? "lift-ms-group-query-attention" : "lift-ms-multi-head-attention"),
  standard: () => "lift-onnx-attention",
};

describe("lift-attention + lower-attention on the zoo", () => {
  const configs: Record<string, ZooConfig> = {
    "llama half rotary": llamaConfig({ layers: 3 }),
    "llama interleaved rotary": llamaConfig({ rotary: "interleaved" }),
    "llama head dim 8 (rotary outside GQA)": llamaConfig({ hidden: 32, heads: 4, kvHeads: 1 }),
    "qwen2 (q/k/v bias, MHA)": llamaConfig({ qkvBias: true, kvHeads: 4 }),
    gpt2: gpt2Config(),
  };
  for (const [name, config] of Object.entries(configs)) {
    for (const encoding of ["decomposed", "ms", "standard"] as const) {
      it(`${name}, ${encoding}`, async () => {
        await expectLiftLowerExact(buildZooModel(config, { encoding }), config.layers, RULE[encoding](config));
      });
    }
  }
});

describe("lift-attention + lower-attention on the reference exports", () => {
  const root = resolve(import.meta.dirname, "../../test/fixtures/reference");
  for (const dir of readdirSync(root).filter((d) => !d.includes("."))) {
    it(dir, async () => {
      await expectLiftLowerExact(loadModel(join(root, dir, "model.onnx")), 2, "lift-decomposed-attention");
    });
  }
});

describe.skipIf(!HAVE_SHARED)(`lift-attention + lower-attention on ../shared/fixtures (${HAVE_SHARED ? "present" : SKIP_SHARED_REASON})`, () => {
  const cases: [file: string, layers: number, rule: string, tolerance?: number][] = [
    ["genai-tiny-qwen35/decoder.onnx", 2, "lift-ms-group-query-attention", 2e-3],
    ["genai-tiny-random-gpt2-fp32/past.onnx", 5, "lift-ms-attention"],
    ["genai-tiny-random-gpt2-fp16/past.onnx", 5, "lift-ms-attention", 2e-3],
    // Hybrid, but its attention layers only pass the cache through: there is no attention to find.
    ["genai-tiny-random-lfm2-fp32/decoder.onnx", 0, "lift-decomposed-attention"],
  ];
  it("covers every .onnx file there", () => {
    expect(cases.map(([file]) => file).sort()).toEqual(sharedOnnxFiles());
  });
  for (const [file, layers, rule, tolerance] of cases) {
    it(file, async () => {
      await expectLiftLowerExact(loadModel(join(SHARED_FIXTURES, file)), layers, rule, tolerance);
    });
  }
});
