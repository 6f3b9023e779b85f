// The export matrix (tools/export_matrix.py): tiny models from real transformers
// code, exported with eager and sdpa attention by both torch.onnx exporters and
// optimised by onnxruntime.transformers and onnxscript. Every written fixture
// must decode in onnxruntime-node exactly as PyTorch did, driven the plain
// transformers.js way, and every variant of the matrix must be accounted for in
// matrix.json (written, or failed with a reason) rather than silently missing.

import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it, expect } from "vitest";
import { greedyReference } from "./helpers/reference-loop.ts";

interface Expected {
  arch: string;
  impl: string;
  exporter: string;
  optimiser: string;
  expected_attention_layers: number;
  max_new_tokens: number;
  prompts: { input_ids: number[]; greedy: number[] }[];
}

type MatrixEntry = { status: "written"; bytes: number } | { status: "failed"; reason: string };

const MATRIX_DIR = join(import.meta.dirname, "fixtures", "export-matrix");
const matrix = JSON.parse(readFileSync(join(MATRIX_DIR, "matrix.json"), "utf8")) as Record<string, MatrixEntry>;

const ARCHS = ["llama", "mistral", "qwen2", "qwen3", "phi3", "gemma2", "gpt2", "gpt_neox", "olmo2"];
const IMPLS = ["eager", "sdpa"];
const EXPORTERS = ["torchscript-opset17", "dynamo-opset20", "dynamo-opset23"];
const OPTIMISED = ["torchscript-opset17-ort-transformers", "dynamo-opset20-optimize-for-ort"];

const fixtures = readdirSync(MATRIX_DIR, { withFileTypes: true })
  .filter((e) => e.isDirectory())
  .map((e) => e.name)
  .sort();

describe("export matrix", () => {
  it("accounts for every architecture x attention x exporter (x optimiser for sdpa)", () => {
    const variants = ARCHS.flatMap((arch) => [
      ...IMPLS.flatMap((impl) => EXPORTERS.map((exporter) => `${arch}-${impl}-${exporter}`)),
      ...OPTIMISED.map((optimised) => `${arch}-sdpa-${optimised}`),
    ]);
    expect(Object.keys(matrix).sort()).toEqual(variants.sort());
  });

  it("has a folder for exactly the variants recorded as written", () => {
    const written = Object.entries(matrix)
      .filter(([, e]) => e.status === "written")
      .map(([name]) => name)
      .sort();
    expect(fixtures).toEqual(written);
  });

  for (const name of fixtures) {
    it(`${name}: onnxruntime-node reproduces PyTorch's greedy tokens`, async () => {
      const dir = join(MATRIX_DIR, name);
      expect(existsSync(join(dir, "model.onnx"))).toBe(true);
      const expected = JSON.parse(readFileSync(join(dir, "expected.json"), "utf8")) as Expected;
      expect(name.startsWith(`${expected.arch}-${expected.impl}-${expected.exporter}`)).toBe(true);
      expect(expected.expected_attention_layers).toBeGreaterThan(0);
      expect(expected.prompts.length).toBeGreaterThan(0);
      for (const { input_ids, greedy } of expected.prompts) {
        const tokens = await greedyReference(join(dir, "model.onnx"), input_ids, expected.max_new_tokens);
        expect(tokens, `prompt ${JSON.stringify(input_ids)}`).toEqual(greedy);
      }
    });
  }
});
