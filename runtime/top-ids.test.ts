// Models compiled with the logits-topk pass: greedy consumers (plain decoding, chain
// verification, Token Recycling) fetch the graph's argmax / top-k ids instead of [S, V]
// logits and produce exactly the plain model's tokens; anything that reads the logits
// (sampling) still fetches them. Token Recycling's table is seeded from the prompt.
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadModel, saveModel } from "../graph/onnx/index.ts";
import { llamaConfig, writeZooModel } from "../graph/zoo/index.ts";
import { liftAttention } from "../passes/attention/lift.ts";
import { lowerAttention } from "../passes/attention/lower.ts";
import { createLogitsTopk } from "../passes/speculative/logits-topk.ts";
import { createTreeAttentionMask } from "../passes/speculative/tree-attention-mask.ts";
import { tempDir } from "../test/helpers/tmp.ts";
import { DecoderModel } from "./decoder.ts";
import { MIN_LOGITS_FOR_IDS } from "./ids-or-logits.ts";
import { Generator } from "./generate.ts";
import { RECYCLE_TOP_K, topK, type AdjacencyMatrix } from "./speculative/adjacency-matrix.ts";
import { adjacencyFor } from "./speculative/recycling-state.ts";
import { TokenRecycling } from "./speculative/token-recycling.ts";
import { floatData, readFloatRow } from "./tensors.ts";

const OPEN = { device: "cpu" as const, threads: 1 };
/** Every call fetches the graph's ids where it has them (by default a call with few logits fetches those: MIN_LOGITS_FOR_IDS). */
const IDS_ALWAYS = { ...OPEN, minLogitsForIds: 0 };
const NEW_TOKENS = 20;
const PROMPTS = [
  [1, 2, 3, 4, 5],
  [7, 30, 7, 30, 7, 30, 11],
  [40, 41, 42, 43, 40, 41, 42, 43],
];

/** The zoo model rewritten by `passes` (the context is what every pass here needs), saved as `name`. */
function compile(path: string, name: string, passes: ((model: ReturnType<typeof loadModel>) => void)[]): string {
  const model = loadModel(path);
  for (const pass of passes) pass(model);
  const out = join(path, "..", name);
  saveModel(model, out);
  return out;
}

const ctx = (options: Record<string, unknown> = {}) => ({ options, note: () => {} });
const addTopk = (model: ReturnType<typeof loadModel>) => void createLogitsTopk().run(model, ctx({ k: RECYCLE_TOP_K }));
const addTree = (model: ReturnType<typeof loadModel>) => {
  liftAttention(model);
  createTreeAttentionMask().run(model, ctx());
  lowerAttention(model);
};

describe("in-graph top-k ids instead of logits", () => {
  const dir = tempDir("pipec-top-ids-");
  let plain: DecoderModel, topk: DecoderModel, tree: DecoderModel, treeTopk: DecoderModel;
  let plainTokens: number[][];
  let treePath: string, treeTopkPath: string;

  beforeAll(async () => {
    const { modelPath } = writeZooModel(llamaConfig({ seed: 5 }), join(dir, "llama"));
    treePath = compile(modelPath, "tree.onnx", [addTree]);
    treeTopkPath = compile(modelPath, "tree-topk.onnx", [addTree, addTopk]);
    [plain, topk, tree, treeTopk] = await Promise.all([
      DecoderModel.open(modelPath, OPEN),
      DecoderModel.open(compile(modelPath, "topk.onnx", [addTopk]), IDS_ALWAYS),
      DecoderModel.open(treePath, OPEN),
      DecoderModel.open(treeTopkPath, IDS_ALWAYS),
    ]);
    plainTokens = [];
    for (const prompt of PROMPTS) plainTokens.push((await new Generator(plain).run(prompt, { maxTokens: NEW_TOKENS, eosTokenIds: [] })).tokens);
  });
  afterAll(async () => {
    await Promise.all([plain, topk, tree, treeTopk].map((m) => m?.release()));
  });

  it("the contract finds the outputs; a fetch list naming only logits_argmax returns only it", async () => {
    expect(plain.contract.argmax).toBeUndefined();
    expect(topk.contract.argmax).toBe("logits_argmax");
    expect(topk.contract.topkIndices).toEqual({ name: "logits_topk_indices", k: RECYCLE_TOP_K });
    expect([topk.offersTop(1), topk.offersTop(RECYCLE_TOP_K), topk.offersTop(RECYCLE_TOP_K + 1), plain.offersTop(1)]).toEqual([true, true, false, false]);
    const feeds: Record<string, ort.Tensor> = {};
    const seq = topk.newSequence();
    const before = topk.logitsFetches;
    const ids = await seq.forwardTop([1, 2, 3], 1);
    expect(topk.logitsFetches).toBe(before);
    expect(ids.rows).toBe(3);
    // onnxruntime-node itself: what is not named in the fetches does not come back.
    const session = topk.session;
    for (const meta of session.inputMetadata) {
      if (!meta.isTensor) continue;
      const dims = meta.shape.map((d) => (typeof d === "number" ? d : meta.name.startsWith("past") ? 0 : 1));
      const size = dims.reduce((a, b) => a * b, 1);
      feeds[meta.name] = meta.type === "int64" ? new ort.Tensor("int64", new BigInt64Array(size).fill(1n), dims) : new ort.Tensor(meta.type as "float32", new Float32Array(size), dims);
    }
    const outputs = await session.run(feeds, { logits_argmax: null });
    expect(Object.keys(outputs)).toEqual(["logits_argmax"]);
  });

  it("forwardTop's ids are the host argmax and top-k of the same call's logits", async () => {
    const tokens = [3, 9, 27, 81, 5];
    const logits = await plain.newSequence().forward(tokens);
    const top = await topk.newSequence().forwardTop(tokens, RECYCLE_TOP_K);
    const argmaxIds = await topk.newSequence().forwardTop(tokens, 1);
    const V = plain.contract.vocabSize!;
    const row = new Float32Array(V);
    const expected = new Int32Array(RECYCLE_TOP_K);
    tokens.forEach((_, i) => {
      readFloatRow(floatData(logits), i * V, row);
      topK(row, RECYCLE_TOP_K, expected);
      expect(Array.from(top.ids.subarray(i * top.k, (i + 1) * top.k))).toEqual(Array.from(expected));
      expect(argmaxIds.ids[i]).toBe(expected[0]);
    });
  });

  it("plain greedy decoding: the plain model's tokens, no logits fetched (prefill included)", async () => {
    const before = topk.logitsFetches;
    for (const [i, prompt] of PROMPTS.entries()) {
      const { tokens } = await new Generator(topk).run(prompt, { maxTokens: NEW_TOKENS, eosTokenIds: [] });
      expect(tokens).toEqual(plainTokens[i]);
    }
    expect(topk.logitsFetches).toBe(before);
  });

  it("sampling and a repetition penalty still fetch logits, with the plain model's tokens", async () => {
    for (const sampling of [{ temperature: 0.8, seed: 3 }, { repetitionPenalty: 1.3 }]) {
      const want = await new Generator(plain).run(PROMPTS[0]!, { maxTokens: NEW_TOKENS, eosTokenIds: [], sampling });
      const before = topk.logitsFetches;
      const got = await new Generator(topk).run(PROMPTS[0]!, { maxTokens: NEW_TOKENS, eosTokenIds: [], sampling });
      expect(got.tokens).toEqual(want.tokens);
      expect(topk.logitsFetches - before).toBe(NEW_TOKENS);
    }
  });

  it("greedy chain verification (prompt lookup, fixed and adaptive): plain tokens, no logits fetched", async () => {
    const before = topk.logitsFetches;
    let accepted = 0;
    for (const [i, prompt] of PROMPTS.entries()) {
      for (const speculate of [{ kind: "lookup" as const, draftLength: 4 }, { kind: "lookup" as const }]) {
        const result = await new Generator(topk).run(prompt, { maxTokens: NEW_TOKENS, eosTokenIds: [], speculate });
        expect(result.tokens).toEqual(plainTokens[i]);
        accepted += result.stats.speculative!.acceptedTokens;
      }
    }
    expect(accepted).toBeGreaterThan(0);
    expect(topk.logitsFetches).toBe(before);
  });

  it("Token Recycling (fixed and auto trees): plain tokens, no logits fetched", async () => {
    const before = treeTopk.logitsFetches;
    for (const [i, prompt] of PROMPTS.entries()) {
      for (const tree of [80, "auto" as const]) {
        const result = await new Generator(treeTopk).run(prompt, { maxTokens: NEW_TOKENS, eosTokenIds: [], speculate: { kind: "recycle", tree } });
        expect(result.tokens, `tree ${tree}, prompt ${i}`).toEqual(plainTokens[i]);
      }
    }
    expect(treeTopk.logitsFetches).toBe(before);
  });

  it("by default a call with fewer than MIN_LOGITS_FOR_IDS logits fetches those instead (V = 256: one-token steps), with the same tokens", async () => {
    const V = plain.contract.vocabSize!;
    expect(V * 3).toBeLessThan(MIN_LOGITS_FOR_IDS);
    expect(V * 4).toBeGreaterThanOrEqual(MIN_LOGITS_FOR_IDS);
    const byDefault = await DecoderModel.open(treeTopkPath, OPEN);
    try {
      expect([byDefault.fetchesTop(1, 1), byDefault.fetchesTop(1, 3), byDefault.fetchesTop(1, 4), byDefault.fetchesTop(RECYCLE_TOP_K, 4)]).toEqual([false, false, true, true]);
      for (const [i, prompt] of PROMPTS.entries()) {
        // Every prompt has at least 4 tokens: its prefill fetches ids, each later one-token step logits.
        const before = byDefault.logitsFetches;
        const { tokens } = await new Generator(byDefault).run(prompt, { maxTokens: NEW_TOKENS, eosTokenIds: [] });
        expect(tokens).toEqual(plainTokens[i]);
        expect(byDefault.logitsFetches - before).toBe(NEW_TOKENS - 1);
        for (const speculate of [{ kind: "lookup" as const, draftLength: 4 }, { kind: "recycle" as const, tree: 80 }]) {
          const result = await new Generator(byDefault).run(prompt, { maxTokens: NEW_TOKENS, eosTokenIds: [], speculate });
          expect(result.tokens, `${speculate.kind}, prompt ${i}`).toEqual(plainTokens[i]);
        }
      }
    } finally {
      await byDefault.release();
    }
  });

  it("Token Recycling's steps that the guard keeps plain cost what plain decoding does: no host top-k of the prompt's or their own logits", async () => {
    const fresh = await DecoderModel.open(treePath, OPEN);
    try {
      const V = fresh.contract.vocabSize!;
      // A fresh guard times two plain steps before it drafts: a request of three tokens takes the prefill's and theirs.
      const result = await new Generator(fresh).run(PROMPTS[1]!, { maxTokens: 3, eosTokenIds: [], speculate: { kind: "recycle" } });
      expect(result.tokens).toEqual(plainTokens[1]!.slice(0, 3));
      expect(result.stats.speculative!.callsWithDraft).toBe(0);
      expect(adjacencyFor(fresh, V).successors.every((s) => s === 0)).toBe(true);
    } finally {
      await fresh.release();
    }
  });

  it("cold start: before the first step that may draft, every prompt token's successors are its row's top-k (from logits and from ids); logits wait until then", async () => {
    const prompt = PROMPTS[1]!;
    const logits = await plain.newSequence().forward(prompt);
    const V = plain.contract.vocabSize!;
    const row = new Float32Array(V);
    const expected = new Map<number, number[]>();
    prompt.forEach((token, i) => {
      readFloatRow(floatData(logits), i * V, row);
      const out = new Int32Array(RECYCLE_TOP_K);
      topK(row, RECYCLE_TOP_K, out);
      expected.set(token, Array.from(out)); // a later occurrence overwrites an earlier one, as in the table
    });
    const successorsOf = (matrix: AdjacencyMatrix, token: number) => Array.from(matrix.successors.subarray(token * matrix.k, (token + 1) * matrix.k));
    const seededRows = (matrix: AdjacencyMatrix) => Array.from({ length: V }, (_, t) => t).filter((t) => successorsOf(matrix, t).some((s) => s !== 0));
    // Fresh sessions: the table is kept per model, and the shared ones have stepped already.
    for (const [path, fetchesIds] of [[treePath, false], [treeTopkPath, true]] as const) {
      const fresh = await DecoderModel.open(path, OPEN);
      try {
        const sequence = fresh.newSequence();
        const output = fetchesIds ? await sequence.forwardTop(prompt, RECYCLE_TOP_K) : await sequence.forward(prompt);
        const recycling = TokenRecycling.create(sequence, V, { tree: 80 });
        recycling.seed([{ tokens: prompt, output }]);
        const matrix = adjacencyFor(fresh, V);
        expect(seededRows(matrix), "ids are recycled at once, logits not yet").toEqual(fetchesIds ? [...expected.keys()].sort((a, b) => a - b) : []);
        // A fixed tree may draft at every step; with no room for a draft it verifies the root alone and recycles its row too.
        const root = plainTokens[1]![0]!;
        await recycling.step(root, [...prompt, root], 0);
        for (const [token, successors] of expected) if (token !== root) expect(successorsOf(matrix, token), `token ${token}`).toEqual(successors);
        expect(seededRows(matrix)).toEqual([...new Set([...expected.keys(), root])].sort((a, b) => a - b));
        const result = await new Generator(fresh).run(prompt, { maxTokens: NEW_TOKENS, eosTokenIds: [], speculate: { kind: "recycle", tree: 80 } });
        expect(result.tokens).toEqual(plainTokens[1]);
      } finally {
        await fresh.release();
      }
    }
  });
});
