/**
 * DySpec (runtime/speculative/dyspec.ts: the draft tree grown by draft probability under a node
 * budget) against the static template (the paper's Token Recycling tree, breadth-first prefix) at
 * equal node budgets, greedy: for Token Recycling's table (`recycle` with `grow: "dyspec"`; the
 * target compiled with tree-attention-mask alone, so steps see logits and the table records
 * probabilities) and for draft models (`dyspec` with `grow: "dyspec" | "template"`; drafts: the
 * target's own weights, whose probabilities are calibrated, and the layer-skipped self-draft).
 *
 * Per configuration: accepted draft tokens per target call, tokens per target call, and wall ms
 * per generated token (only meaningful on an idle machine). Token Recycling runs every prompt
 * once untimed first, so its table is hot, then the counted pass.
 *
 * Usage: npx tsx bench/dyspec.ts [--tokens 48] [--prompts 6] [--only <target name part>]
 */
import { join } from "node:path";
import { loadModel, saveModel } from "../graph/onnx/index.ts";
import { createLiftAttention, createLowerAttention } from "../passes/attention/index.ts";
import { createTreeAttentionMask } from "../passes/speculative/tree-attention-mask.ts";
import { DecoderModel, Generator, type DySpecSpeculation, type RecycleSpeculation } from "../runtime/index.ts";
import { benchTargets, openSpeculationModels, promptSets } from "./speculative-setup.ts";

const args = process.argv.slice(2);
const option = (name: string, fallback: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : fallback);
const TOKENS = Number(option("--tokens", "48"));
const PROMPTS = Number(option("--prompts", "6"));
const ONLY = option("--only", "");
const BUDGETS = [8, 16, 32];

/** `target` with the tree-attention-mask pass alone (no logits-topk: steps fetch logits), saved beside the bench's models. */
function treeOnly(target: string, name: string): string {
  const model = loadModel(target);
  for (const pass of [createLiftAttention(), createTreeAttentionMask(), createLowerAttention()]) pass.run(model, { options: {}, note: () => {} });
  const path = join(import.meta.dirname, "models", "derived", `${name.replace(/\W+/g, "-")}-tree-only.onnx`);
  saveModel(model, path);
  return path;
}

for (const target of benchTargets(ONLY, false)) {
  const models = await openSpeculationModels(target, 1);
  const prompts = await promptSets(new Generator(models.original[0]!), models.vocabSize, PROMPTS / 2, TOKENS);
  const all = [...prompts.open, ...prompts.grounded];
  const treePath = treeOnly(target.path, target.name);
  console.log(`\n${target.name}: ${all.length} prompts (half open, half grounded), ${TOKENS} greedy tokens each`);
  console.log("| method | draft | budget | tree | accepted / call | tokens / call | ms / token |");
  console.log("|---|---|---|---|---|---|---|");
  const measure = async (method: string, draftName: string, budget: number, shape: string, speculate: () => RecycleSpeculation | DySpecSpeculation, model: DecoderModel, warmUp: boolean) => {
    if (warmUp) for (const prompt of all) await new Generator(model).run(prompt, { maxTokens: TOKENS, eosTokenIds: [], speculate: speculate() });
    let [accepted, calls, draftCalls, generated, ms] = [0, 0, 0, 0, 0];
    for (const prompt of all) {
      const t0 = performance.now();
      const result = await new Generator(model).run(prompt, { maxTokens: TOKENS, eosTokenIds: [], speculate: speculate() });
      ms += performance.now() - t0;
      const s = result.stats.speculative!;
      [accepted, calls, draftCalls, generated] = [accepted + s.acceptedTokens, calls + s.targetCalls, draftCalls + s.callsWithDraft, generated + s.generatedTokens];
    }
    console.log(`| ${method} | ${draftName} | ${budget} | ${shape} | ${(accepted / draftCalls).toFixed(3)} | ${(generated / calls).toFixed(3)} | ${(ms / generated).toFixed(3)} |`);
  };
  for (const budget of BUDGETS) {
    for (const grow of ["template", "dyspec"] as const) {
      // A model object per configuration: the table is kept per model, and each learns its own.
      const model = await DecoderModel.open(treePath, { device: "cpu", threads: 1 });
      await measure("recycle", "(table)", budget, grow, () => ({ kind: "recycle", tree: budget, grow }), model, true);
      await model.release();
    }
  }
  const tree = await DecoderModel.open(treePath, { device: "cpu", threads: 1 });
  for (const [draftName, draft] of [["target's weights", models.original[0]!], ["layer-skip", models.layerSkip[0]!]] as const) {
    for (const budget of BUDGETS) {
      for (const grow of ["template", "dyspec"] as const) await measure("dyspec", draftName, budget, grow, () => ({ kind: "dyspec", model: draft, budget, grow }), tree, false);
    }
  }
  await tree.release();
  await models.release();
}
