import { readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { isPipecError } from "../../graph/errors.ts";
import type { Model } from "../../graph/ir/model.ts";
import { Builder } from "../../graph/ir/builder.ts";
import { loadModel } from "../../graph/onnx/index.ts";
import { buildZooModel, gpt2Config, llamaConfig, type AttentionEncoding, type WeightSource, type ZooConfig } from "../../graph/zoo/index.ts";
import { HAVE_SHARED, SHARED_FIXTURES, SKIP_SHARED_REASON } from "../../test/helpers/fixtures.ts";
import { maxDifference, prefillAndDecode } from "../../test/helpers/two-step-parity.ts";
import { CachedDecoder, maxAbsDiff, modelToBytes } from "../../test/helpers/zoo-decode.ts";
import { liftAttention } from "../attention/lift.ts";
import { lowerAttention } from "../attention/lower.ts";
import { createSelfDraft } from "./self-draft.ts";

const PROMPT = [1, 17, 42, 99, 5];

function selfDraft(model: Model, options: Record<string, unknown>) {
  liftAttention(model);
  const result = createSelfDraft().run(model, { options, note: () => {} });
  lowerAttention(model);
  return result;
}

/** Logits of a prefill and two decode steps, concatenated. */
async function decode(model: Model): Promise<Float32Array> {
  const decoder = await CachedDecoder.open(modelToBytes(model));
  try {
    const steps = [await decoder.step(PROMPT), await decoder.step([7]), await decoder.step([3])];
    return Float32Array.from(steps.flatMap((s) => Array.from(s.logits)));
  } finally {
    await decoder.release();
  }
}

/**
 * The target's own tensors (its init may scale by depth, so a shallower build's would differ),
 * layer `renamed[i]`'s read under layer i's names.
 */
function targetWeights(target: Model, renamed: Record<number, number> = {}): WeightSource {
  return {
    weight: (name) => {
      const source = name.replace(/(layers|h)\.(\d+)\./, (all, prefix: string, i: string) => `${prefix}.${renamed[Number(i)] ?? i}.`);
      const tensor = target.graph.initializers.get(source)?.initializer;
      if (!tensor) throw new Error(`the target has no weight ${source}`);
      return tensor;
    },
  };
}

const kvNames = (m: Model) => m.graph.inputs.map((v) => v.name).filter((n) => n.startsWith("past"));

describe("self-draft on the zoo", () => {
  const configs: Record<string, ZooConfig> = { llama: llamaConfig({ layers: 3 }), gpt2: gpt2Config({ layers: 3 }) };
  for (const [name, config] of Object.entries(configs)) {
    for (const encoding of ["decomposed", "ms", "standard"] as AttentionEncoding[]) {
      it(`${name}, ${encoding}: skip [] is the target; skip [1] is the model built from layers 0 and 2`, async () => {
        const target = await decode(buildZooModel(config, { encoding }));
        const identical = buildZooModel(config, { encoding });
        expect(selfDraft(identical, { skip: "[]" })).toEqual({ changed: false, stats: { "layers-skipped": 0, "kv-inputs-dropped": 0 } });
        expect(maxAbsDiff(await decode(identical), target)).toBeLessThanOrEqual(1e-5);

        const draft = buildZooModel(config, { encoding });
        expect(selfDraft(draft, { skip: "[1]" })).toEqual({ changed: true, stats: { "layers-skipped": 1, "kv-inputs-dropped": 2 } });
        expect(kvNames(draft).some((n) => n.includes(".1."))).toBe(false);
        expect(draft.graph.outputs.map((v) => v.name)).toEqual(["logits", ...[0, 2].flatMap((i) => [`present.${i}.key`, `present.${i}.value`])]);
        const twoLayers = buildZooModel({ ...config, layers: 2 }, { encoding, weights: targetWeights(buildZooModel(config, { encoding }), { 1: 2 }) });
        expect(maxAbsDiff(await decode(draft), await decode(twoLayers))).toBeLessThanOrEqual(1e-5);
      });
    }
  }

  it("keep_every 2 skips the odd layers; skipping the last layer is the shallower model", async () => {
    const config = llamaConfig({ layers: 4 });
    expect(selfDraft(buildZooModel(config), { keep_every: 2 }).stats).toEqual({ "layers-skipped": 2, "kv-inputs-dropped": 4 });
    const draft = buildZooModel(config);
    selfDraft(draft, { skip: [3] });
    expect(maxAbsDiff(await decode(draft), await decode(buildZooModel({ ...config, layers: 3 }, { weights: targetWeights(buildZooModel(config)) })))).toBe(0);
  });

  it("refuses bad options with one PipecError line", () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ skip: "[5]" }, "self-draft: layer 5 does not exist; the model has 2 layers (0..1)"],
      [{ skip: "[0, 1]" }, "self-draft: skipping all 2 layers leaves no model to draft with"],
      [{ skip: "one" }, "self-draft: skip must list layer indices like [1, 3], got 'one'"],
      [{ skip: "[1]", keep_every: 2 }, "self-draft: give skip or keep_every, not both"],
    ];
    for (const [options, message] of cases) {
      let error: unknown;
      try {
        selfDraft(buildZooModel(llamaConfig()), options);
      } catch (e) {
        error = e;
      }
      expect(isPipecError(error), message).toBe(true);
      expect((error as Error).message).toBe(message);
    }
  });
});

// A parallel residual layer adds both branches in one join: skipping it is the target with the
// layer's output projections (attention dense, MLP dense_4h_to_h) zeroed, weights and biases.
describe("self-draft on parallel residuals (GPT-NeoX: x + attn(ln1 x) + mlp(ln2 x))", () => {
  const root = resolve(import.meta.dirname, "../../test/fixtures/export-matrix");
  for (const dir of ["gpt_neox-eager-torchscript-opset17", "gpt_neox-sdpa-dynamo-opset20", "gpt_neox-sdpa-dynamo-opset20-optimize-for-ort"]) {
    for (const layer of [0, 1]) {
      it(`${dir}: skip [${layer}] is the target whose layer ${layer} adds nothing`, async () => {
        const load = () => loadModel(join(root, dir, "model.onnx"));
        const draft = load();
        expect(selfDraft(draft, { skip: `[${layer}]` }).stats).toEqual({ "layers-skipped": 1, "kv-inputs-dropped": 2 });
        const silenced = load();
        expect(zeroProjections(silenced, new RegExp(`^model\\.gpt_neox\\.layers\\.${layer}\\.(attention\\.dense|mlp\\.dense_4h_to_h)\\.bias$`))).toBe(2);
        const [expected, got] = [await decode(silenced), await decode(draft)];
        expect(maxAbsDiff(got, expected)).toBeLessThanOrEqual(1e-4);
        // Not vacuous: the layer did contribute.
        expect(maxAbsDiff(await decode(load()), expected)).toBeGreaterThan(1e-2);
      });
    }
  }
});

/** Zeroes the projections whose bias matches `bias`: the Add of (MatMul output, bias) adds zeros times the MatMul output and zero bias. */
function zeroProjections(model: Model, bias: RegExp): number {
  const adds = model.graph.nodeArray().filter((n) => n.op === "Add" && n.inputs.some((i) => i?.isInitializer && bias.test(i.name)));
  for (const add of adds) {
    const b = new Builder(model.graph, { before: add });
    add.inputs.forEach((input, slot) => add.setInput(slot, b.op.Mul(input!, b.float32(0))));
  }
  return adds.length;
}

describe("self-draft on the reference exports", () => {
  const root = resolve(import.meta.dirname, "../../test/fixtures/reference");
  for (const dir of readdirSync(root).filter((d) => !d.includes("."))) {
    it(`${dir}: skip [1] keeps layer 0's cache only and still runs (shape reads of layer 1's past get layer 0's)`, async () => {
      const draft = loadModel(join(root, dir, "model.onnx"));
      expect(selfDraft(draft, { skip: "[1]" }).stats).toEqual({ "layers-skipped": 1, "kv-inputs-dropped": 2 });
      expect(kvNames(draft)).toEqual(["past_key_values.0.key", "past_key_values.0.value"]);
      const [prefill, decode] = await prefillAndDecode(modelToBytes(draft));
      expect(decode!.logits!.dims).toEqual([1, 1, prefill!.logits!.dims[2]]);
    });
  }
});

describe.skipIf(!HAVE_SHARED)(`self-draft on the shared fixtures${HAVE_SHARED ? "" : ` (${SKIP_SHARED_REASON})`}`, () => {
  const fixtures = { "gpt2 fp32 (com.microsoft Attention)": "genai-tiny-random-gpt2-fp32/past.onnx", "qwen35 (SkipLayerNormalization residuals)": "genai-tiny-qwen35/decoder.onnx" };
  for (const [name, file] of Object.entries(fixtures)) {
    it(`${name}: skip [] is the target; skip [1] drops layer 1's cache and still runs`, async () => {
      const load = () => loadModel(join(SHARED_FIXTURES, file));
      const target = await prefillAndDecode(modelToBytes(load()));
      const identical = load();
      selfDraft(identical, { skip: "[]" });
      expect(maxDifference(await prefillAndDecode(modelToBytes(identical)), target)).toBeLessThanOrEqual(1e-3);

      const draft = load();
      const result = selfDraft(draft, { skip: "[1]" });
      expect(result.stats!["layers-skipped"]).toBe(1);
      const [prefill] = await prefillAndDecode(modelToBytes(draft));
      expect(prefill!.logits!.dims).toEqual(target[0]!.logits!.dims);
      expect(Object.keys(prefill!).some((k) => /[._]1(\.|$)/.test(k))).toBe(false);
    });
  }
});
