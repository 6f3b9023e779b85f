// Token Recycling: the template and matrix mechanics exactly, then lossless greedy decoding
// (token for token equal to plain decoding) on models compiled with the tree-attention-mask
// pass: the zoo in every encoding, the reference exports, the trained stories260K and the shared
// Qwen GroupQueryAttention fixture.
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { importLlama2c } from "../../graph/importers/llama2c.ts";
import { loadModel } from "../../graph/onnx/index.ts";
import { ENCODINGS, gpt2Config, llamaConfig, writeZooModel } from "../../graph/zoo/index.ts";
import { tempDir } from "../../test/helpers/tmp.ts";
import { compileTree } from "../../test/helpers/tree-target.ts";
import { DecoderModel } from "../decoder.ts";
import { Generator } from "../generate.ts";
import { HAVE_SHARED, NO_SHARED, REFERENCE_DIR, SHARED_DECODERS, SHARED_FIXTURES, referenceExports } from "../../test/helpers/runtime-models.ts";
import { losslessPrompts, refusalCode } from "../../test/helpers/lossless.ts";
import type { SpeculativeStats } from "./stats.ts";
import { AdjacencyMatrix, topK } from "./adjacency-matrix.ts";
import type { RecycleOptions } from "./token-recycling.ts";
import { longestAgreeingPath, PAPER_TREE, TreeTemplate } from "./token-tree.ts";

const NEW_TOKENS = 24;
const OPEN = { device: "cpu" as const, threads: 1 };

describe("Token Recycling mechanics", () => {
  it("the paper's 2.2.2 template: 80 drafts, depth widths 8 21 25 15 8 3, parents first", () => {
    const t = new TreeTemplate(PAPER_TREE);
    expect(t.size).toBe(81);
    expect([1, 2, 3, 4, 5, 6].map((d) => t.depths.filter((x) => x === d).length)).toEqual([8, 21, 25, 15, 8, 3]);
    t.parents.forEach((p, i) => expect(p).toBeLessThan(i));
    expect(PAPER_TREE[PAPER_TREE.length - 1]).toEqual([0, 0, 0, 1, 0, 0]);
  });

  it("topK keeps the k largest, largest first, ties to the lower id", () => {
    const out = new Int32Array(3);
    topK(Float32Array.from([0.5, 2, -1, 2, 7, 0.5]), 3, out);
    expect(Array.from(out)).toEqual([4, 1, 3]);
  });

  it("the adjacency matrix stores each token's successors; zeros before anything is seen", () => {
    const m = new AdjacencyMatrix(6, 2);
    expect([m.get(3, 0), m.get(3, 1)]).toEqual([0, 0]);
    m.update(3, Float32Array.from([0, 1, 9, 0, 5, 0]));
    expect([m.get(3, 0), m.get(3, 1)]).toEqual([2, 4]);
  });

  it("the longest agreeing path explores repeated siblings", () => {
    // root 0 -> {1: tok 5, 2: tok 5}; 2 -> {3: tok 8}. The target says 5 after the root, 8 after node 2.
    const ids = [1, 5, 5, 8];
    const parents = [-1, 0, 0, 2];
    const greedy = [5, 3, 8, 9];
    expect(longestAgreeingPath(ids, parents, greedy)).toEqual([0, 2, 3]);
    expect(longestAgreeingPath(ids, parents, [4, 0, 0, 0])).toEqual([0]);
  });
});

/** Greedy decoding through the generator with Token Recycling as its speculation. */
async function recycleGenerate(model: DecoderModel, prompt: number[], count: number, options: RecycleOptions): Promise<{ tokens: number[]; stats: SpeculativeStats }> {
  const result = await new Generator(model).run(prompt, { maxTokens: count, eosTokenIds: [], speculate: { kind: "recycle", ...options } });
  return { tokens: result.tokens, stats: result.stats.speculative! };
}

/** Every prompt recycled twice (the second run starts from the first's matrix) with each option set; all equal plain decoding. */
async function expectLossless(originalPath: string, treePath: string, count: number, optionSets: RecycleOptions[] = [{}, { tree: 80 }]): Promise<SpeculativeStats[]> {
  const original = await DecoderModel.open(originalPath, OPEN);
  const tree = await DecoderModel.open(treePath, OPEN);
  const stats: SpeculativeStats[] = [];
  try {
    const generator = new Generator(original);
    for (const prompt of await losslessPrompts(generator, original.contract.vocabSize!, count)) {
      const plain = await generator.run(prompt, { maxTokens: NEW_TOKENS, eosTokenIds: [] });
      for (const options of optionSets) {
        for (let run = 0; run < 2; run++) {
          const recycled = await recycleGenerate(tree, prompt, NEW_TOKENS, options);
          expect(recycled.tokens, `tree ${options.tree ?? "auto"}, run ${run}, prompt ${prompt.join(" ")}`).toEqual(plain.tokens);
          // An auto tree's every step is the guard's decision, and the stats say which; a fixed tree has none.
          const { policy, guard, targetCalls } = recycled.stats;
          expect(policy).toBe((options.tree ?? "auto") === "auto" ? "adaptive" : "fixed");
          expect(guard.draftSteps + guard.plainSteps + guard.probes).toBe(policy === "adaptive" ? targetCalls : 0);
          stats.push(recycled.stats);
        }
      }
    }
  } finally {
    await Promise.all([original.release(), tree.release()]);
  }
  return stats;
}

const accepted = (stats: SpeculativeStats[]) => stats.reduce((s, x) => s + x.acceptedTokens, 0);

describe("Token Recycling is lossless on the zoo", () => {
  const dir = tempDir("pipec-recycle-zoo-");
  for (const encoding of ENCODINGS) {
    for (const [family, config] of [["llama", llamaConfig({ seed: 5 })], ["gpt2", gpt2Config({ seed: 6 })]] as const) {
      it(`${family}, ${encoding}: 4 prompts, auto and 80-node trees, template and grown (DySpec), cold and hot matrix`, async () => {
        const { modelPath } = writeZooModel(config, join(dir, `${family}-${encoding}`), { encoding });
        const stats = await expectLossless(modelPath, compileTree(modelPath), 4, [{}, { tree: 80 }, { grow: "dyspec" }, { grow: "dyspec", tree: 24 }]);
        // The full trees are verified every step, so the matrix's guesses are tested and some accepted.
        expect(accepted(stats.filter((_, i) => i % 8 >= 2 && i % 8 < 4))).toBeGreaterThan(0);
        expect(accepted(stats.filter((_, i) => i % 8 >= 6))).toBeGreaterThan(0);
      });
    }
  }
});

describe("Token Recycling at the end of the context", () => {
  const dir = tempDir("pipec-recycle-full-");
  it("a 20-position model: trees shrink to the positions left; the same tokens and end as plain decoding", async () => {
    const { modelPath } = writeZooModel(llamaConfig({ seed: 5, maxPositions: 20 }), join(dir, "llama"));
    const [original, tree] = await Promise.all([DecoderModel.open(modelPath, OPEN), DecoderModel.open(compileTree(modelPath), OPEN)]);
    try {
      for (const prompt of [[1, 2, 3, 4, 5, 6], [1, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9]]) {
        const plain = await new Generator(original).run(prompt, { maxTokens: 30, eosTokenIds: [] });
        for (const options of [{}, { tree: 80 }, { grow: "dyspec" as const, tree: 80 }]) {
          const recycled = await new Generator(tree).run(prompt, { maxTokens: 30, eosTokenIds: [], speculate: { kind: "recycle", ...options } });
          expect(recycled.tokens).toEqual(plain.tokens);
          expect(recycled.finishReason).toBe(plain.finishReason);
        }
      }
    } finally {
      await Promise.all([original.release(), tree.release()]);
    }
  });
});

describe("Token Recycling when drafting does not pay", () => {
  const dir = tempDir("pipec-recycle-probe-");
  it("a cost curve under which no tree pays: the guard's drafting steps and probes verify the 2-token rank-0 chain; still lossless", async () => {
    const { modelPath } = writeZooModel(llamaConfig({ seed: 5 }), join(dir, "llama"));
    const perToken = { callMs: (tokens: number) => tokens };
    const stats = await expectLossless(modelPath, compileTree(modelPath), 2, [{ cost: perToken }]);
    for (const s of stats) {
      // Two tokens, fewer only when the request's last tokens leave less room.
      expect(s.draftedTokens).toBeLessThanOrEqual(2 * s.callsWithDraft);
      expect(s.draftedTokens).toBeGreaterThanOrEqual(2 * s.callsWithDraft - 1);
    }
    // The guard starts with drafting on: the first request drafts.
    expect(stats.some((s) => s.callsWithDraft > 0)).toBe(true);
  });
});

describe("Token Recycling is lossless on the reference exports", () => {
  const dir = tempDir("pipec-recycle-ref-");
  for (const name of referenceExports()) {
    it(`${name}: 3 prompts`, async () => {
      const source = join(REFERENCE_DIR, name, "model.onnx");
      const treePath = compileTree(join(dir, name, "model.onnx"), () => loadModel(source));
      await expectLossless(source, treePath, 3, [{}]);
    });
  }
});

const TRAINED = join(import.meta.dirname, "../../examples/models");
const trained = existsSync(TRAINED) ? readdirSync(TRAINED).filter((name) => existsSync(join(TRAINED, name, "model.onnx"))).sort() : [];

describe.skipIf(trained.length === 0)(`Token Recycling on the project's trained models${trained.length ? "" : ` (skipped: no examples/models/<name>/model.onnx yet)`}`, () => {
  const dir = tempDir("pipec-recycle-trained-");
  for (const name of trained) {
    it(`${name}: 8 prompts, lossless`, async () => {
      const source = join(TRAINED, name, "model.onnx");
      await expectLossless(source, compileTree(join(dir, name, "model.onnx"), () => loadModel(source)), 8, [{}]);
    });
  }
});

const CHECKPOINT = join(SHARED_FIXTURES, "stories260K/stories260K.bin");

describe.skipIf(!HAVE_SHARED || !existsSync(CHECKPOINT))(`Token Recycling on the trained stories260K ${HAVE_SHARED ? "" : NO_SHARED}`, () => {
  const dir = tempDir("pipec-recycle-stories-");
  let stats: SpeculativeStats[] = [];
  afterAll(() => void (stats = []));

  it("12 prompts: lossless, and the hot matrix accepts drafts", async () => {
    importLlama2c(CHECKPOINT, dir, { encoding: "decomposed" });
    const modelPath = join(dir, "model.onnx");
    // The auto tree drafts only while measured costs say it pays (a loaded machine may say not), so
    // acceptance is asserted on a fixed 16-node tree, which drafts every step: per prompt the runs
    // are auto cold, auto hot, fixed cold, fixed hot.
    stats = await expectLossless(modelPath, compileTree(modelPath), 12, [{}, { tree: 16 }]);
    const hot = stats.filter((_, i) => i % 4 === 3);
    expect(accepted(hot)).toBeGreaterThan(0);
    expect(hot.reduce((s, x) => s + x.targetCalls, 0)).toBeLessThan(hot.length * NEW_TOKENS);
  });

  it("DySpec: lossless, and more accepted tokens per target call than the template at the same node budget", async () => {
    const modelPath = join(dir, "model.onnx");
    const treePath = join(dir, "tree.onnx");
    const perCall: Record<string, number> = {};
    for (const [name, options] of [["template", { tree: 16 }], ["dyspec", { grow: "dyspec", tree: 16 }]] as const) {
      // Each policy on its own model object: the matrix is kept per model, and each must learn its own.
      const runs = await expectLossless(modelPath, treePath, 12, [options]);
      const hot = runs.filter((_, i) => i % 2 === 1);
      perCall[name] = accepted(hot) / hot.reduce((s, x) => s + x.callsWithDraft, 0);
    }
    expect(perCall["dyspec"]!, JSON.stringify(perCall)).toBeGreaterThan(perCall["template"]!);
  });

  it("a model without tree_attention_mask, or sampling, is refused in one line", async () => {
    const [plain, tree] = await Promise.all([DecoderModel.open(join(dir, "model.onnx"), OPEN), DecoderModel.open(join(dir, "tree.onnx"), OPEN)]);
    const refusal = (model: DecoderModel, temperature?: number) => refusalCode(model, { kind: "recycle" }, temperature);
    try {
      expect(await refusal(plain)).toBe("no-tree-attention");
      expect(await refusal(tree, 0.8)).toBe("bad-speculation");
    } finally {
      await Promise.all([plain.release(), tree.release()]);
    }
  });
});

describe.skipIf(!HAVE_SHARED)(`Token Recycling on the shared Qwen fixture (com.microsoft GroupQueryAttention, fp16 KV and logits, no position_ids)${HAVE_SHARED ? "" : ` (${NO_SHARED})`}`, () => {
  const dir = tempDir("pipec-recycle-qwen-");
  it("6 prompts, auto and 80-node trees, cold and hot matrix: lossless, and drafts accepted", async () => {
    const treePath = compileTree(join(dir, "decoder.onnx"), () => loadModel(SHARED_DECODERS.qwen35));
    const tree = await DecoderModel.open(treePath, OPEN);
    try {
      expect(tree.contract.hasTreeMask).toBe(true); // the pass rewrote the GroupQueryAttention nodes
    } finally {
      await tree.release();
    }
    const stats = await expectLossless(SHARED_DECODERS.qwen35, treePath, 6);
    expect(accepted(stats)).toBeGreaterThan(0);
    expect(accepted(stats.filter((_, i) => i % 4 >= 2))).toBeGreaterThan(0); // the full 80-node tree
  });
});
