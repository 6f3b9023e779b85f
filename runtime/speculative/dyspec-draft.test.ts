// DySpec with a draft model: greedy output equals plain decoding token for token (zoo targets
// compiled with the tree-attention-mask pass, drafts from the target's own weights, where every
// path is right, and from an unrelated model, where most are wrong), for grown trees and the
// static template alike. On the trained stories260K, with a draft whose probabilities predict
// acceptance (the target's own weights, run without the tree mask), the grown tree accepts more
// tokens per target call than the template at the same node budget. (With its layer-skipped
// self-drafts, whose probabilities predict acceptance poorly, the two are level or the template
// ahead: bench/README.md.)
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { importLlama2c } from "../../graph/importers/llama2c.ts";
import { loadModel, saveModel } from "../../graph/onnx/index.ts";
import { llamaConfig, writeZooModel } from "../../graph/zoo/index.ts";
import { liftAttention } from "../../passes/attention/lift.ts";
import { lowerAttention } from "../../passes/attention/lower.ts";
import { createTreeAttentionMask } from "../../passes/speculative/tree-attention-mask.ts";
import { tempDir } from "../../test/helpers/tmp.ts";
import { DecoderModel } from "../decoder.ts";
import { Generator } from "../generate.ts";
import { HAVE_SHARED, NO_SHARED, SHARED_FIXTURES } from "../../test/helpers/runtime-models.ts";
import { AcceptanceByProbability, type DySpecSpeculation } from "./dyspec-draft.ts";
import { losslessPrompts, refusalCode } from "../../test/helpers/lossless.ts";
import type { SpeculativeStats } from "./stats.ts";

const OPEN = { device: "cpu" as const, threads: 1 };
const NEW_TOKENS = 24;

/** `path` rewritten by lift-attention, `pass`, lower-attention, saved beside it as `name`. */
function derived(path: string, name: string, pass: { run: (model: ReturnType<typeof loadModel>, context: { options: Record<string, unknown>; note: () => void }) => unknown }, options: Record<string, unknown> = {}): string {
  const model = loadModel(path);
  liftAttention(model);
  pass.run(model, { options, note: () => {} });
  lowerAttention(model);
  const out = join(path, "..", name);
  saveModel(model, out);
  return out;
}

/** Every prompt decoded plainly and with each DySpec setting; all equal. Returns the stats per setting name. */
async function expectLossless(originalPath: string, treePath: string, draftPath: string, count: number, settings: Record<string, Omit<DySpecSpeculation, "kind" | "model">>): Promise<Map<string, SpeculativeStats[]>> {
  const [original, tree, draft] = await Promise.all([originalPath, treePath, draftPath].map((p) => DecoderModel.open(p, OPEN)));
  const byName = new Map<string, SpeculativeStats[]>();
  try {
    const generator = new Generator(original);
    for (const prompt of await losslessPrompts(generator, original.contract.vocabSize!, count)) {
      const plain = await generator.run(prompt, { maxTokens: NEW_TOKENS, eosTokenIds: [] });
      for (const [name, options] of Object.entries(settings)) {
        const result = await new Generator(tree).run(prompt, { maxTokens: NEW_TOKENS, eosTokenIds: [], speculate: { kind: "dyspec", model: draft, ...options } });
        expect(result.tokens, `${name}, prompt ${prompt.join(" ")}`).toEqual(plain.tokens);
        byName.set(name, [...(byName.get(name) ?? []), result.stats.speculative!]);
      }
    }
  } finally {
    await Promise.all([original, tree, draft].map((m) => m.release()));
  }
  return byName;
}

const perCall = (stats: readonly SpeculativeStats[]) => stats.reduce((s, x) => s + x.acceptedTokens, 0) / stats.reduce((s, x) => s + x.callsWithDraft, 0);

describe("acceptance by draft probability", () => {
  it("starts at the draft's word (the bucket's midpoint) and moves to what verification shows", () => {
    const calibration = new AcceptanceByProbability();
    expect(calibration.rate(0.93)).toBeCloseTo(0.95, 10);
    expect(calibration.rate(0.12)).toBeCloseTo(0.15, 10);
    // An overconfident draft: its 0.9-1.0 tokens are accepted one time in four.
    for (let i = 0; i < 200; i++) calibration.record(0.95, i % 4 === 0);
    expect(calibration.rate(0.99)).toBeGreaterThan(0.24);
    expect(calibration.rate(0.99)).toBeLessThan(0.27);
    expect(calibration.rate(0.12)).toBeCloseTo(0.15, 10); // other buckets untouched
  });
});

describe("DySpec with a draft model on the zoo", () => {
  const dir = tempDir("pipec-dyspec-zoo-");
  const targetPath = writeZooModel(llamaConfig({ seed: 5 }), join(dir, "target")).modelPath;
  const treePath = derived(targetPath, "tree.onnx", createTreeAttentionMask());
  const otherPath = writeZooModel(llamaConfig({ seed: 6 }), join(dir, "other")).modelPath;
  const settings = { "grown 12": { budget: 12 }, "template 12": { budget: 12, grow: "template" as const }, "grown 1": { budget: 1 } };

  it("drafts from the target's own weights: lossless, and the argmax path is always accepted", async () => {
    const stats = await expectLossless(targetPath, treePath, targetPath, 4, settings);
    // The random model's distributions are flat, so both shapes spend the budget on breadth: two levels of 12 nodes.
    for (const [name, runs] of stats) expect(perCall(runs), name).toBeGreaterThan(name === "grown 1" ? 0.9 : 1.5);
  });

  it("drafts from an unrelated model: lossless", async () => {
    await expectLossless(targetPath, treePath, otherPath, 4, settings);
  });

  it("refuses sampling and a target without the tree mask, in one line", async () => {
    const [plain, tree] = await Promise.all([targetPath, treePath].map((p) => DecoderModel.open(p, OPEN)));
    const refusal = (model: DecoderModel, temperature?: number) => refusalCode(model, { kind: "dyspec", model: plain }, temperature);
    try {
      expect(await refusal(plain)).toBe("no-tree-attention");
      expect(await refusal(tree, 0.8)).toBe("bad-speculation");
    } finally {
      await Promise.all([plain.release(), tree.release()]);
    }
  });
});

const CHECKPOINT = join(SHARED_FIXTURES, "stories260K/stories260K.bin");

describe.skipIf(!HAVE_SHARED || !existsSync(CHECKPOINT))(`DySpec with a draft model on the trained stories260K${HAVE_SHARED ? "" : ` (${NO_SHARED})`}`, () => {
  it("a draft with the target's weights, 16 nodes: lossless, and more accepted tokens per target call grown than with the template", async () => {
    const dir = tempDir("pipec-dyspec-stories-");
    importLlama2c(CHECKPOINT, dir, { encoding: "decomposed" });
    const modelPath = join(dir, "model.onnx");
    const treePath = derived(modelPath, "tree.onnx", createTreeAttentionMask());
    const stats = await expectLossless(modelPath, treePath, modelPath, 8, { grown: { budget: 16 }, template: { budget: 16, grow: "template" } });
    const [grown, template] = [perCall(stats.get("grown")!), perCall(stats.get("template")!)];
    expect(grown, `grown ${grown}, template ${template}`).toBeGreaterThan(template);
  });
});
