// Warm state across processes: what a pipeline's speculation measured and learned is saved beside
// it and restored into fresh model objects (a new process's: every per-model table is keyed by the
// DecoderModel object), so the first request of a fresh process measures nothing and starts from
// the learned table. Stale, damaged or reset state is measured again when the pipeline opens.
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { loadModel, saveModel } from "../../graph/onnx/index.ts";
import { llamaConfig, writeZooModel } from "../../graph/zoo/index.ts";
import { liftAttention } from "../../passes/attention/lift.ts";
import { lowerAttention } from "../../passes/attention/lower.ts";
import { createTreeAttentionMask } from "../../passes/speculative/tree-attention-mask.ts";
import { tempDir } from "../../test/helpers/tmp.ts";
import { DecoderModel } from "../decoder.ts";
import { Generator, type GenerationEvent } from "../generate.ts";
import { knownCost } from "./cost-model.ts";
import { guardsOf } from "./guard.ts";
import { MeasuredCost } from "./cost-model.ts";
import { recyclingState } from "./recycling-state.ts";
import { WarmState } from "./warm-state.ts";
import { knownCalibration } from "./dyspec-draft.ts";

const OPEN = { device: "cpu" as const, threads: 1 };
const PROMPT = [5, 17, 200, 42, 9, 100, 5, 17, 200, 42];

async function finish(events: AsyncIterable<GenerationEvent>): Promise<{ tokens: number[]; speculative?: { acceptedTokens: number } }> {
  for await (const event of events) if (event.kind === "end") return { tokens: event.tokens, speculative: event.stats.speculative };
  throw new Error("no end event");
}

describe("warm state", () => {
  const dir = tempDir("pipec-warm-");
  const modelPath = writeZooModel(llamaConfig({ seed: 5 }), join(dir, "llama")).modelPath;
  const treePath = (() => {
    const model = loadModel(modelPath);
    liftAttention(model);
    createTreeAttentionMask().run(model, { options: {}, note: () => {} });
    lowerAttention(model);
    saveModel(model, join(dir, "tree.onnx"));
    return join(dir, "tree.onnx");
  })();
  afterEach(() => vi.restoreAllMocks());

  it("Token Recycling: costs measured when the pipeline opens; a fresh process restores costs, table and learning, and measures nothing", async () => {
    const file = join(dir, "recycle", "warm-state.json");
    const plain = await new Generator(await DecoderModel.open(modelPath, OPEN)).run(PROMPT, { maxTokens: 24, eosTokenIds: [] });
    const first = await DecoderModel.open(treePath, OPEN);
    const warm = await WarmState.open(file, { model: first, path: treePath }, { speculate: { kind: "recycle" }, argmaxOnly: true });
    expect(recyclingState(first).cost).toBeDefined(); // before any request
    const measure = vi.spyOn(MeasuredCost, "measure");
    const run1 = await finish(warm.after(new Generator(first).stream(PROMPT, { maxTokens: 24, eosTokenIds: [], speculate: { kind: "recycle" } })));
    expect(measure).not.toHaveBeenCalled();
    expect(run1.tokens).toEqual(plain.tokens);
    expect(existsSync(file)).toBe(true);

    const fresh = await DecoderModel.open(treePath, OPEN);
    const warm2 = await WarmState.open(file, { model: fresh, path: treePath }, { speculate: { kind: "recycle" }, argmaxOnly: true });
    const [before, after] = [recyclingState(first), recyclingState(fresh)];
    expect((after.cost as MeasuredCost).samples).toEqual((before.cost as MeasuredCost).samples);
    expect(Array.from(after.matrix!.successors)).toEqual(Array.from(before.matrix!.successors));
    expect(after.matrix!.successors.some((id) => id !== 0)).toBe(true);
    expect(Array.from(after.template!.acceptance.trials)).toEqual(Array.from(before.template!.acceptance.trials));
    expect(after.template!.guard.snapshot()).toEqual(before.template!.guard.snapshot());
    const run2 = await finish(warm2.after(new Generator(fresh).stream(PROMPT, { maxTokens: 24, eosTokenIds: [], speculate: { kind: "recycle" } })));
    expect(measure).not.toHaveBeenCalled();
    expect(run2.tokens).toEqual(plain.tokens);
    await Promise.all([first.release(), fresh.release()]);
  });

  it("lookup: the cost line and the guard carry over; a damaged file or a reset is measured again when the pipeline opens", async () => {
    const file = join(dir, "lookup", "warm-state.json");
    const speculate = { kind: "lookup" as const };
    const first = await DecoderModel.open(modelPath, OPEN);
    const warm = await WarmState.open(file, { model: first, path: modelPath }, { speculate, argmaxOnly: true });
    expect(knownCost(first)).toBeDefined();
    await finish(warm.after(new Generator(first).stream(PROMPT, { maxTokens: 24, eosTokenIds: [], speculate })));
    const guard = guardsOf(first)!.get("lookup 3")!.snapshot();

    const fresh = await DecoderModel.open(modelPath, OPEN);
    await WarmState.open(file, { model: fresh, path: modelPath }, { speculate, argmaxOnly: true });
    expect(knownCost(fresh)).toEqual(knownCost(first));
    expect(guardsOf(fresh)!.get("lookup 3")!.snapshot()).toEqual(guard);

    // Another model file (other weights): its entry is not this one's.
    const saved = JSON.parse(readFileSync(file, "utf8")) as { entries: Record<string, unknown>; hashes: Record<string, { sha256: string }> };
    expect(Object.keys(saved.entries)).toHaveLength(1);
    // Keyed by the file's SHA-256, remembered with its size and mtime so the next open need not read it.
    expect(Object.keys(saved.entries)[0]).toMatch(new RegExp(` \\| ${saved.hashes[modelPath]!.sha256}$`));
    expect(saved.hashes[modelPath]!.sha256).toBe(createHash("sha256").update(readFileSync(modelPath)).digest("hex"));

    writeFileSync(file, "{ not json");
    const damaged = await DecoderModel.open(modelPath, OPEN);
    await WarmState.open(file, { model: damaged, path: modelPath }, { speculate, argmaxOnly: true });
    expect(knownCost(damaged)).toBeDefined(); // measured at open instead
    expect(guardsOf(damaged)!.get("lookup 3")!.snapshot()).not.toEqual(guard); // a fresh guard

    await warm.save();
    const reset = await DecoderModel.open(modelPath, OPEN);
    await WarmState.open(file, { model: reset, path: modelPath }, { speculate, argmaxOnly: true, reset: true });
    expect(existsSync(file)).toBe(false);
    expect(knownCost(reset)).toBeDefined();
    await Promise.all([first, fresh, damaged, reset].map((m) => m.release()));
  });

  it("DySpec with a draft model: the acceptance by draft probability it learned carries over to fresh models; a damaged part starts cold", async () => {
    const file = join(dir, "dyspec", "warm-state.json");
    const plain = await new Generator(await DecoderModel.open(modelPath, OPEN)).run(PROMPT, { maxTokens: 24, eosTokenIds: [] });
    const [target, draft] = await Promise.all([DecoderModel.open(treePath, OPEN), DecoderModel.open(modelPath, OPEN)]);
    const speculate = { kind: "dyspec" as const, model: draft, budget: 8 };
    const warm = await WarmState.open(file, { model: target, path: treePath }, { draft: { model: draft, path: modelPath }, speculate, argmaxOnly: true });
    expect(knownCalibration(target, draft)).toBeUndefined();
    const run = await finish(warm.after(new Generator(target).stream(PROMPT, { maxTokens: 24, eosTokenIds: [], speculate })));
    expect(run.tokens).toEqual(plain.tokens);
    const learned = knownCalibration(target, draft)!.snapshot();
    // Ten buckets start at two pseudo-trials each: verification added to them.
    expect(learned.trials.reduce((a, b) => a + b, 0)).toBeGreaterThan(20);

    const [target2, draft2] = await Promise.all([DecoderModel.open(treePath, OPEN), DecoderModel.open(modelPath, OPEN)]);
    await WarmState.open(file, { model: target2, path: treePath }, { draft: { model: draft2, path: modelPath }, speculate: { ...speculate, model: draft2 }, argmaxOnly: true });
    expect(knownCalibration(target2, draft2)!.snapshot()).toEqual(learned);

    const saved = JSON.parse(readFileSync(file, "utf8")) as { entries: Record<string, { dyspec?: { hits: number[]; trials: number[] } }> };
    const entry = Object.values(saved.entries).find((e) => e.dyspec)!;
    entry.dyspec!.hits[0] = entry.dyspec!.trials[0]! + 1; // more hits than trials
    writeFileSync(file, JSON.stringify(saved));
    const [target3, draft3] = await Promise.all([DecoderModel.open(treePath, OPEN), DecoderModel.open(modelPath, OPEN)]);
    await WarmState.open(file, { model: target3, path: treePath }, { draft: { model: draft3, path: modelPath }, speculate: { ...speculate, model: draft3 }, argmaxOnly: true });
    expect(knownCalibration(target3, draft3)).toBeUndefined();
    await Promise.all([target, draft, target2, draft2, target3, draft3].map((m) => m.release()));
  });
});
