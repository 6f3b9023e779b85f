// Every family x encoding writes a model that pipec can inspect and onnxruntime can run, with the
// Optimum I/O and the operators its encoding promises; large-model external data streams to disk
// and computes the same logits as inline weights.

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { inspectModel } from "../compiler/api.ts";
import { ENCODINGS, gpt2Config, llamaConfig, parameterCount, writeZooModel, type AttentionEncoding, type ZooConfig } from "../graph/zoo/index.ts";
import { CachedDecoder, maxAbsDiff } from "./helpers/zoo-decode.ts";

const work = mkdtempSync(join(tmpdir(), "pipec-zoo-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const FAMILIES: Record<string, ZooConfig> = { llama: llamaConfig({ layers: 3 }), gpt2: gpt2Config({ layers: 3 }) };

/** Operators that must appear, and how often, for each encoding (per family). */
function expectedOps(family: string, encoding: AttentionEncoding, layers: number): Record<string, number> {
  if (encoding === "decomposed") {
    return family === "llama" ? { Softmax: layers, Neg: 2 * layers, ReduceMean: 2 * layers + 1 } : { Softmax: layers, Div: layers, LayerNormalization: 2 * layers + 1 };
  }
  if (encoding === "standard") return family === "llama" ? { Attention: layers, RotaryEmbedding: 2 * layers, RMSNormalization: 2 * layers + 1 } : { Attention: layers };
  return family === "llama" ? { "com.microsoft::GroupQueryAttention": layers, SimplifiedLayerNormalization: 2 * layers + 1 } : { "com.microsoft::MultiHeadAttention": layers };
}

describe("zoo families", () => {
  for (const [family, config] of Object.entries(FAMILIES)) {
    for (const encoding of ENCODINGS) {
      it(`${family} / ${encoding}: inspectable, Optimum I/O, runs`, async () => {
        const dir = join(work, `${family}-${encoding}`);
        const { modelPath, parameters } = writeZooModel(config, dir, { encoding });
        expect(parameters).toBe(parameterCount(config));

        const summary = inspectModel(modelPath);
        const names = (vs: { name: string }[]) => vs.map((v) => v.name);
        const cache = (prefix: string) => Array.from({ length: config.layers }, (_, i) => [`${prefix}.${i}.key`, `${prefix}.${i}.value`]).flat();
        expect(names(summary.inputs)).toEqual(["input_ids", "attention_mask", "position_ids", ...cache("past_key_values")]);
        expect(names(summary.outputs)).toEqual(["logits", ...cache("present")]);
        expect(summary.inputs[3].shape).toEqual(["batch_size", family === "llama" ? 2 : 4, "past_sequence_length", 16]);
        expect(summary.ops).toMatchObject(expectedOps(family, encoding, config.layers));
        expect(summary.initializers.bytes).toBeGreaterThanOrEqual(parameters * 4);

        const facts = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
        expect(facts).toMatchObject({ family, encoding, layers: 3, vocabSize: 256, headDim: 16 });

        const decoder = await CachedDecoder.open(modelPath);
        try {
          const prefill = await decoder.step([1, 2, 3]);
          expect(prefill.logits.length).toBe(3 * config.vocabSize);
          expect(prefill.logits.every(Number.isFinite)).toBe(true);
          expect((await decoder.step([4])).logits.length).toBe(config.vocabSize);
        } finally {
          await decoder.release();
        }
      });
    }
  }

  it("external data: weights streamed to model.onnx.data give the same logits as inline ones", async () => {
    const config = llamaConfig({ layers: 2, seed: 3 });
    const inline = writeZooModel(config, join(work, "inline"), { externalData: false });
    const external = writeZooModel(config, join(work, "external"), { externalData: true });
    const summary = inspectModel(external.modelPath);
    expect(summary.externalFiles.map((f) => f.location)).toEqual(["model.onnx.data"]);
    // Every weight plus the rotary tables lies in the data file; only tiny constants stay inline.
    expect(summary.initializers.externalBytes).toBeGreaterThanOrEqual(parameterCount(config) * 4);
    expect(summary.initializers.inlineBytes).toBeLessThan(1024);

    const logits = async (path: string) => {
      const decoder = await CachedDecoder.open(path);
      try {
        return (await decoder.step([1, 5, 7, 11])).logits;
      } finally {
        await decoder.release();
      }
    };
    expect(maxAbsDiff(await logits(external.modelPath), await logits(inline.modelPath))).toBe(0);
  });

  it("the same seed gives the same bytes, another seed other weights", () => {
    const write = (seed: number, name: string) => {
      writeZooModel(llamaConfig({ seed }), join(work, name));
      return readFileSync(join(work, name, "model.onnx"));
    };
    const a = write(5, "seed-a");
    expect(write(5, "seed-b").equals(a)).toBe(true);
    expect(write(6, "seed-c").equals(a)).toBe(false);
  });

  it("rejects a config whose shapes cannot work, in one line", () => {
    expect(() => llamaConfig({ heads: 8, kvHeads: 3 })).toThrow(/heads \(8\) must be a multiple of kvHeads \(3\)/);
    expect(() => gpt2Config({ hidden: 100, heads: 3 })).toThrow(/hidden \(100\) must be a multiple of heads \(3\)/);
  });
});
