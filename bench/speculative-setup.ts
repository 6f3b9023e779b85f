// What bench/speculative.ts and bench/speculative-floor.ts both need: the targets, the models a
// .pipe compiles for speculation, the draft models, the prompt sets, sessions in slots, medians.
import { existsSync, readdirSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { importLlama2c } from "../graph/importers/llama2c.ts";
import { loadModel, saveModel } from "../graph/onnx/index.ts";
import type { Pass } from "../graph/pass-manager/pass.ts";
import { compileSource } from "../compiler/pipeline/compile.ts";
import { llamaConfig, writeZooModel } from "../graph/zoo/index.ts";
import { createLiftAttention, createLowerAttention } from "../passes/attention/index.ts";
import { createSelfDraft } from "../passes/speculative/self-draft.ts";
import { DecoderModel, Generator } from "../runtime/index.ts";
import { ensureBenchModel } from "./zoo.ts";

const MODELS = join(import.meta.dirname, "models");
const TRAINED = join(import.meta.dirname, "..", "examples", "models");
const STORIES = join(import.meta.dirname, "..", "..", "shared", "fixtures", "stories260K", "stories260K.bin");

export interface Target {
  name: string;
  path: string;
}

/** The project's trained model(s), stories260K (../shared) and, with `withZoo`, the random zoo-10m; those whose name contains `only`. */
export function benchTargets(only: string, withZoo = true): Target[] {
  const list: Target[] = [];
  // The project's trained model(s), once tools/train_tiny_model.py has put them there.
  if (existsSync(TRAINED)) {
    for (const name of readdirSync(TRAINED).sort()) {
      if (existsSync(join(TRAINED, name, "model.onnx"))) list.push({ name: `trained ${name}`, path: join(TRAINED, name, "model.onnx") });
    }
  }
  if (existsSync(STORIES)) {
    const dir = join(MODELS, "stories260K");
    const path = existsSync(join(dir, "model.onnx")) ? join(dir, "model.onnx") : importLlama2c(STORIES, dir).modelPath;
    list.push({ name: "stories260K", path });
  } else {
    console.log(`(stories260K skipped: ${STORIES} is absent)`);
  }
  if (withZoo || only) list.push({ name: "zoo-10m (random)", path: ensureBenchModel("10m") });
  return list.filter((t) => t.name.includes(only));
}

/** A one-layer random model with the target's vocabulary: its drafts are (almost) never accepted. */
function randomDraft(vocabSize: number): string {
  const dir = join(MODELS, `spec-draft-v${vocabSize}`);
  if (!existsSync(join(dir, "model.onnx"))) writeZooModel(llamaConfig({ vocabSize, hidden: 32, layers: 1, heads: 2, kvHeads: 1, intermediate: 64, maxPositions: 2048, seed: 77 }), dir);
  return join(dir, "model.onnx");
}

/** Where the bench's derived models go: next to its other models, never inside the model's own (possibly committed) folder. */
const derivedDir = (target: string) => join(MODELS, "derived", basename(dirname(target)));

/** `target` rewritten by lift-attention, `passes`, lower-attention, saved beside it as `name`. */
function derived(target: string, name: string, passes: { pass: Pass; options?: Record<string, unknown> }[]): string {
  const model = loadModel(target);
  for (const { pass, options } of [{ pass: createLiftAttention() }, ...passes, { pass: createLowerAttention() }]) pass.run(model, { options: options ?? {}, note: () => {} });
  const path = join(derivedDir(target), name);
  saveModel(model, path);
  return path;
}

/** The layer-skipped self-draft of `target` (the self-draft pass, every other layer kept). */
function layerSkipDraft(target: string): string {
  return derived(target, "self-draft.onnx", [{ pass: createSelfDraft(), options: { keep_every: 2 } }]);
}

/** The target model a .pipe with this `speculate:` request compiles (greedy), as `pipec run` would. */
async function compiledFor(target: string, name: string, speculate: string): Promise<string> {
  const outDir = join(derivedDir(target), name);
  const source = `pipeline bench {\n  model llm = onnx(${JSON.stringify(target)})\n  tokenizer tok = ids\n  stage decode = generate(llm, tok) {\n    speculate: ${speculate}\n    sampling: greedy\n  }\n}\n`;
  const result = await compileSource(source, join(outDir, "bench.pipe"), { outDir });
  if (result.diagnostics.length) throw new Error(`compiling ${name} for ${target}: ${JSON.stringify(result.diagnostics)}`);
  return join(outDir, "models", "llm", "model.onnx");
}

/** Open-ended prompts start the model off (BOS plus a few tokens); grounded ones repeat a passage it wrote (`tokens` long). */
export async function promptSets(generator: Generator, V: number, count: number, tokens: number): Promise<Record<"grounded" | "open", number[][]>> {
  const open = Array.from({ length: count }, (_, i) => [1, ...Array.from({ length: 7 }, (_, j) => (i * 131 + j * 37 + 11) % V)]);
  const grounded: number[][] = [];
  for (const prompt of open) {
    const { tokens: continuation } = await generator.run(prompt, { maxTokens: tokens, eosTokenIds: [] });
    grounded.push([...prompt, ...continuation, ...prompt]);
  }
  return { grounded, open };
}

/**
 * `path` opened in `count` sessions ("slots"). Identical model files loaded into different
 * sessions run at persistently different speeds (six sessions of stories260K: medians of
 * 26.1-28.2 ms per request in one run, 25.7-26.4 in the next), so a ratio between two sessions
 * carries that spread; the benches spread each configuration's runs over the slots.
 */
async function openSlots(path: string, count: number): Promise<DecoderModel[]> {
  const models: DecoderModel[] = [];
  for (let slot = 0; slot < count; slot++) models.push(await DecoderModel.open(path, { device: "cpu", threads: 1 }));
  return models;
}

/** Every model a speculation bench runs for one target, each in `sessions` slots. */
export interface SpeculationModels {
  vocabSize: number;
  /** The target as the user has it. */
  original: DecoderModel[];
  /** The target a .pipe compiles for lookup and draft-model speculation (greedy). */
  ids: DecoderModel[];
  /** The target a .pipe compiles for Token Recycling. */
  tree: DecoderModel[];
  /** A random draft with the target's vocabulary: never right. */
  useless: DecoderModel[];
  /** The layer-skipped self-draft. */
  layerSkip: DecoderModel[];
  release(): Promise<void>;
}

export async function openSpeculationModels(target: Target, sessions: number): Promise<SpeculationModels> {
  const original = await openSlots(target.path, sessions);
  const vocabSize = original[0]!.contract.vocabSize!;
  const ids = await openSlots(await compiledFor(target.path, "pipe-lookup", "lookup(ngram: 3)"), sessions);
  const tree = await openSlots(await compiledFor(target.path, "pipe-recycle", "recycle(top_k: 8, tree: auto)"), sessions);
  const useless = await openSlots(randomDraft(vocabSize), sessions);
  const layerSkip = await openSlots(layerSkipDraft(target.path), sessions);
  return {
    vocabSize, original, ids, tree, useless, layerSkip,
    release: async () => void (await Promise.all([original, ids, tree, useless, layerSkip].flat().map((m) => m.release()))),
  };
}

/** The middle value (the mean of the two middle ones for an even count). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
