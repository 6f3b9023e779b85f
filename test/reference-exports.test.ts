// The reference exports (tools/export_reference_models.py) must decode exactly
// like PyTorch did when driven the plain transformers.js way through
// onnxruntime-node. If this fails, the fixtures or the baseline loop are broken,
// and every comparison built on them is meaningless.

import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it, expect } from "vitest";
import { greedyReference } from "./helpers/reference-loop.ts";

interface Expected {
  family: string;
  exporter: string;
  max_new_tokens: number;
  prompts: { input_ids: number[]; greedy: number[] }[];
}

const REFERENCE_DIR = join(import.meta.dirname, "fixtures", "reference");

const fixtures = readdirSync(REFERENCE_DIR, { withFileTypes: true })
  .filter((e) => e.isDirectory() && existsSync(join(REFERENCE_DIR, e.name, "expected.json")))
  .map((e) => e.name)
  .sort();

describe("reference ONNX exports", () => {
  it("has fixtures for every family", () => {
    const families = new Set(fixtures.map((name) => name.split("-")[0]));
    expect([...families].sort()).toEqual(["gpt2", "llama", "qwen2"]);
  });

  for (const name of fixtures) {
    it(`${name}: onnxruntime-node reproduces PyTorch's greedy tokens`, async () => {
      const dir = join(REFERENCE_DIR, name);
      const expected = JSON.parse(readFileSync(join(dir, "expected.json"), "utf8")) as Expected;
      expect(expected.prompts.length).toBeGreaterThan(0);
      for (const { input_ids, greedy } of expected.prompts) {
        const tokens = await greedyReference(join(dir, "model.onnx"), input_ids, expected.max_new_tokens);
        expect(tokens, `prompt ${JSON.stringify(input_ids)}`).toEqual(greedy);
      }
    });
  }
});
