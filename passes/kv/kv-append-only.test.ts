// kv-append-only on every zoo family and encoding: the rewritten model, driven by the runtime's
// append cache (a buffer larger than the cache, rows masked out), must decode the same tokens
// as the plain reference loop on the original model, through buffer growth; where the pass
// refuses, it says why in one line and leaves the model as it was.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { PipecError } from "../../graph/errors.ts";
import { loadModel, saveModel } from "../../graph/onnx/index.ts";
import { ENCODINGS, gpt2Config, llamaConfig, writeZooModel, type ZooConfig } from "../../graph/zoo/index.ts";
import { DecoderModel } from "../../runtime/decoder.ts";
import { Generator } from "../../runtime/generate.ts";
import { HAVE_SHARED, NO_SHARED, REFERENCE_DIR, SHARED_DECODERS, referenceExports } from "../../test/helpers/runtime-models.ts";
import { greedyReference } from "../../test/helpers/reference-loop.ts";
import { tempDir } from "../../test/helpers/tmp.ts";
import { defaultRegistry } from "../../compiler/methods/registry.ts";
import { createKvAppendOnly } from "./kv-append-only.ts";

const PROMPT = [1, 45, 12, 200, 7];
const NEW_TOKENS = 16;
const CONFIGS: Record<string, ZooConfig> = { llama: llamaConfig({ seed: 3 }), gpt2: gpt2Config({ seed: 3 }) };
const ctx = { options: {}, note: () => {} };

describe("kv-append-only", () => {
  const dir = tempDir("pipec-kv-append-");

  for (const [family, config] of Object.entries(CONFIGS)) {
    for (const encoding of ENCODINGS) {
      const fusedGqa = family === "llama" && encoding === "ms";
      it(`${family} (${encoding}): ${fusedGqa ? "refuses GroupQueryAttention, model untouched" : "decodes like the reference loop on the original"}`, async () => {
        const { modelPath } = writeZooModel(config, join(dir, `${family}-${encoding}`), { encoding });
        const model = loadModel(modelPath);
        const pass = createKvAppendOnly();
        if (fusedGqa) {
          const before = model.graph.outputs.map((o) => o.name);
          expect(() => pass.run(model, ctx)).toThrow(/GroupQueryAttention/);
          expect(model.graph.outputs.map((o) => o.name)).toEqual(before);
          return;
        }
        const notes: string[] = [];
        const result = pass.run(model, { options: {}, note: (n) => notes.push(n) });
        // By default Concat-grown caches (decomposed) get split attention; fused ops keep theirs and say so.
        const decomposed = encoding === "decomposed";
        expect(result.stats).toEqual({ "kv-outputs-rewritten": 2 * config.layers, "attention-blocks-split": decomposed ? config.layers : 0 });
        expect(notes).toEqual(decomposed ? [] : [expect.stringMatching(/split_attention: skipped/)]);
        expect(model.graph.outputs.map((o) => o.name)).toEqual(["logits", ...Array.from({ length: config.layers }, (_, i) => [`present_new.${i}.key`, `present_new.${i}.value`]).flat()]);
        const appendPath = join(dir, `${family}-${encoding}-append.onnx`);
        saveModel(model, appendPath);

        const expected = await greedyReference(modelPath, PROMPT, NEW_TOKENS);
        // The generator reserves prompt + max tokens (21 rows): the buffer is larger than the cache until the last step.
        const decoder = await DecoderModel.open(appendPath, { device: "cpu", threads: 1, kvCache: { initialCapacity: 4 } });
        try {
          expect(decoder.contract.kvMode).toBe("append");
          const { tokens } = await new Generator(decoder).run(PROMPT, { maxTokens: NEW_TOKENS, eosTokenIds: [] });
          // The append cache checks that every step returned exactly S new rows per slot.
          expect(tokens).toEqual(expected);
        } finally {
          await decoder.release();
        }
      });
    }
  }

  for (const [family, config] of Object.entries(CONFIGS)) {
    it(`${family} (decomposed), split_attention: no Concat or K/V repeat left, decodes like the reference loop`, async () => {
      const { modelPath } = writeZooModel(config, join(dir, `${family}-split-source`));
      const model = loadModel(modelPath);
      const notes: string[] = [];
      const result = createKvAppendOnly().run(model, { options: { split_attention: true }, note: (n) => notes.push(n) });
      expect(notes).toEqual([]);
      expect(result.stats).toEqual({ "kv-outputs-rewritten": 2 * config.layers, "attention-blocks-split": config.layers });
      const ops = [...model.graph.nodes()].map((n) => n.op);
      // The only Concats left are the two score blocks per layer and rotary's half swap; none reads a past input.
      for (const node of model.graph.nodes()) expect(node.op === "Concat" && node.inputs.some((i) => i?.name.startsWith("past_key_values."))).toBe(false);
      // Llama's GQA repeated K and V to H heads with one Expand each per layer; only the mask's Expand stays.
      const expands = (ops: string[]) => ops.filter((op) => op === "Expand").length;
      const repeats = config.family === "llama" ? 2 * config.layers : 0;
      expect(expands(ops)).toBe(expands([...loadModel(modelPath).graph.nodes()].map((n) => n.op)) - repeats);
      const appendPath = join(dir, `${family}-split.onnx`);
      saveModel(model, appendPath);

      const expected = await greedyReference(modelPath, PROMPT, NEW_TOKENS);
      const decoder = await DecoderModel.open(appendPath, { device: "cpu", threads: 1 });
      try {
        expect(decoder.contract.kvMode).toBe("append");
        const chunked = await new Generator(decoder).run(PROMPT, { maxTokens: NEW_TOKENS, eosTokenIds: [], prefillChunkSize: 2 });
        expect(chunked.tokens).toEqual(expected);
      } finally {
        await decoder.release();
      }
    });
  }

  it("split_attention=false keeps attention over the Concat and only re-points the outputs", () => {
    const model = loadModel(writeZooModel(CONFIGS.llama!, join(dir, "no-split")).modelPath);
    expect(createKvAppendOnly().run(model, { options: { split_attention: false }, note: () => {} }).stats).toEqual({ "kv-outputs-rewritten": 4, "attention-blocks-split": 0 });
    const cacheConcats = [...model.graph.nodes()].filter((n) => n.op === "Concat" && n.inputs[0]?.name.startsWith("past_key_values."));
    expect(cacheConcats.map((n) => n.inputs[1]!.name).sort()).toEqual(["present_new.0.key", "present_new.0.value", "present_new.1.key", "present_new.1.value"]);
  });

  it("split_attention on a fused attention op: notes why and keeps the plain rewrite", () => {
    const model = loadModel(writeZooModel(CONFIGS.llama!, join(dir, "split-standard"), { encoding: "standard" }).modelPath);
    const notes: string[] = [];
    expect(createKvAppendOnly().run(model, { options: { split_attention: true }, note: (n) => notes.push(n) }).stats).toEqual({ "kv-outputs-rewritten": 4, "attention-blocks-split": 0 });
    expect(notes).toEqual([expect.stringMatching(/split_attention: skipped/)]);
  });

  for (const name of referenceExports()) {
    it(`reference export ${name}: decodes like the reference loop on the original`, async () => {
      const source = join(REFERENCE_DIR, name, "model.onnx");
      const model = loadModel(source);
      expect(createKvAppendOnly().run(model, ctx).stats).toEqual({ "kv-outputs-rewritten": 4, "attention-blocks-split": 2 });
      const target = join(dir, `${name}.onnx`);
      saveModel(model, target);
      const expected = await greedyReference(source, PROMPT, NEW_TOKENS);
      const decoder = await DecoderModel.open(target, { device: "cpu", threads: 1 });
      try {
        expect((await new Generator(decoder).run(PROMPT, { maxTokens: NEW_TOKENS, eosTokenIds: [] })).tokens).toEqual(expected);
      } finally {
        await decoder.release();
      }
    });
  }

  describe.skipIf(!HAVE_SHARED)(`shared fixtures (${HAVE_SHARED ? "present" : NO_SHARED})`, () => {
    it("refuses onnxruntime-genai's combined layout, GroupQueryAttention and a model that ignores attention_mask, each in one line", () => {
      expect(() => createKvAppendOnly().run(loadModel(SHARED_DECODERS.gpt2Fp32), ctx)).toThrow(/combined present_\{i\} layout/);
      expect(() => createKvAppendOnly().run(loadModel(SHARED_DECODERS.qwen35), ctx)).toThrow(/GroupQueryAttention, which places the new rows in its own buffer/);
      // LFM2's attention masks causally from shapes alone: spare buffer rows would be attended.
      expect(() => createKvAppendOnly().run(loadModel(SHARED_DECODERS.lfm2), ctx)).toThrow(/never reads its attention_mask input/);
    });
  });

  it("refuses a model without attention_mask, naming what the runtime needs", () => {
    const model = loadModel(writeZooModel(CONFIGS.llama!, join(dir, "no-mask")).modelPath);
    const mask = model.graph.inputs.find((i) => i.name === "attention_mask")!;
    model.graph.renameValue(mask, "padding_mask");
    expect(() => createKvAppendOnly().run(model, ctx)).toThrow(PipecError);
    expect(() => createKvAppendOnly().run(model, ctx)).toThrow(/no attention_mask input: the runtime's append cache .* masks the unused rows/);
  });

  it("is a no-op on an already rewritten model, and is registered by name", () => {
    const model = loadModel(writeZooModel(CONFIGS.llama!, join(dir, "twice")).modelPath);
    expect(createKvAppendOnly().run(model, ctx).changed).toBe(true);
    expect(createKvAppendOnly().run(model, ctx)).toEqual({ changed: false, stats: { "kv-outputs-rewritten": 0 } });
    expect(defaultRegistry().names).toContain("kv-append-only");
  });
});
