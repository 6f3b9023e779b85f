/**
 * SpecTr (k i.i.d. drafts, K-SEQ verification; runtime/speculative/spectr.ts) against
 * single-draft speculative sampling (runtime/speculative/verify.ts): acceptance, not speed.
 * Sampled decoding at two temperatures on the trained targets (the project's model, stories260K),
 * with the layer-skipped self-draft (the self-draft pass, every other layer kept) as the draft.
 *
 * Per configuration: draft tokens sampled per target call, tokens the call verified (a trie
 * verifies each distinct prefix once), draft tokens accepted per call, acceptance rate (accepted
 * over sampled) and tokens per target call. "At the same number of draft tokens" compares
 * SpecTr's k drafts of L tokens with one draft of k x L tokens (and of L tokens: the same depth).
 * Acceptance does not depend on timing; the runs are seeded.
 *
 * `--skip "[4]"` drafts with the self-draft that skips those layers instead (on stories260K,
 * skipping the last of its 5 layers leaves a draft that is right about half the time).
 *
 * Usage: npx tsx bench/spectr-acceptance.ts [--tokens 48] [--prompts 4] [--seeds 3] [--skip "[4]"] [--only <target name part>]
 */
import { join } from "node:path";
import { loadModel, saveModel } from "../graph/onnx/index.ts";
import { createLiftAttention, createLowerAttention } from "../passes/attention/index.ts";
import { createSelfDraft } from "../passes/speculative/self-draft.ts";
import { DecoderModel, SpecTrDecoding, Speculator, type SpeculativeStats } from "../runtime/index.ts";
import { benchTargets, openSpeculationModels, promptSets } from "./speculative-setup.ts";
import { Generator } from "../runtime/index.ts";

const args = process.argv.slice(2);
const option = (name: string, fallback: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : fallback);
const TOKENS = Number(option("--tokens", "48"));
const PROMPTS = Number(option("--prompts", "4"));
const SEEDS = Number(option("--seeds", "3"));
const ONLY = option("--only", "");
const SKIP = option("--skip", "");
const LENGTH = 4;

/** The self-draft of `target` skipping SKIP's layers, saved beside the bench's models. */
function skipDraft(target: string, name: string): string {
  const model = loadModel(target);
  for (const [pass, options] of [[createLiftAttention(), {}], [createSelfDraft(), { skip: SKIP }], [createLowerAttention(), {}]] as const) pass.run(model, { options, note: () => {} });
  const path = join(import.meta.dirname, "models", "derived", `${name.replace(/\W+/g, "-")}-skip-${SKIP.replace(/\W+/g, "-")}.onnx`);
  saveModel(model, path);
  return path;
}

interface Stepper {
  step(token: number, context: readonly number[], limit: number): Promise<number[]>;
  stats(generated: number): SpeculativeStats;
  release(): Promise<void>;
}

interface Totals {
  calls: number;
  callsWithDraft: number;
  sampled: number;
  verified: number;
  accepted: number;
  generated: number;
}

/** Decodes TOKENS tokens after `prompt` with `make`'s stepper on `target` (its prompt run first); adds its counts to `totals`. */
async function decode(target: DecoderModel, prompt: readonly number[], make: (sequence: ReturnType<DecoderModel["newSequence"]>) => Stepper & { sampledTokens?: number }, totals: Totals): Promise<void> {
  const sequence = target.newSequence();
  await sequence.advance(prompt.slice(0, -1));
  const context = [...prompt];
  const stepper = make(sequence);
  while (context.length - prompt.length < TOKENS) context.push(...(await stepper.step(context[context.length - 1]!, context, Math.min(LENGTH * 4, TOKENS - (context.length - prompt.length)))));
  const stats = stepper.stats(context.length - prompt.length);
  totals.calls += stats.targetCalls;
  totals.callsWithDraft += stats.callsWithDraft;
  totals.verified += stats.draftedTokens;
  totals.accepted += stats.acceptedTokens;
  totals.generated += stats.generatedTokens;
  totals.sampled += stepper.sampledTokens ?? stats.draftedTokens;
  await stepper.release();
}

for (const target of benchTargets(ONLY, false)) {
  const models = await openSpeculationModels(target, 1);
  const tree = models.tree[0]!;
  const draft = SKIP ? await DecoderModel.open(skipDraft(target.path, target.name), { device: "cpu", threads: 1 }) : models.layerSkip[0]!;
  const V = models.vocabSize;
  const prompts = (await promptSets(new Generator(models.original[0]!), V, PROMPTS, TOKENS)).open;
  console.log(`\n${target.name}: ${PROMPTS} open prompts x ${SEEDS} seeds, ${TOKENS} sampled tokens each; draft: ${SKIP ? `the self-draft skipping layers ${SKIP}` : "the layer-skipped self-draft (every other layer)"}`);
  console.log("| T | configuration | sampled / call | verified / call | accepted / call | acceptance (accepted / sampled) | tokens / call |");
  console.log("|---|---|---|---|---|---|---|");
  for (const temperature of [0.6, 1.0]) {
    const configurations: [string, (sampling: { temperature: number; seed: number }) => (sequence: ReturnType<DecoderModel["newSequence"]>) => Stepper][] = [
      [`one draft of ${LENGTH}`, (sampling) => (sequence) => Speculator.create(sequence, V, { kind: "draft", model: draft, draftLength: LENGTH }, sampling)],
      [`one draft of ${2 * LENGTH}`, (sampling) => (sequence) => Speculator.create(sequence, V, { kind: "draft", model: draft, draftLength: 2 * LENGTH }, sampling)],
      [`one draft of ${4 * LENGTH}`, (sampling) => (sequence) => Speculator.create(sequence, V, { kind: "draft", model: draft, draftLength: 4 * LENGTH }, sampling)],
      [`SpecTr 2 x ${LENGTH}`, (sampling) => (sequence) => SpecTrDecoding.create(sequence, V, { kind: "spectr", model: draft, drafts: 2, draftLength: LENGTH }, sampling)],
      [`SpecTr 4 x ${LENGTH}`, (sampling) => (sequence) => SpecTrDecoding.create(sequence, V, { kind: "spectr", model: draft, drafts: 4, draftLength: LENGTH }, sampling)],
    ];
    for (const [name, make] of configurations) {
      const totals: Totals = { calls: 0, callsWithDraft: 0, sampled: 0, verified: 0, accepted: 0, generated: 0 };
      for (const prompt of prompts) for (let seed = 1; seed <= SEEDS; seed++) await decode(tree, prompt, make({ temperature, seed }), totals);
      const per = (n: number) => (n / totals.callsWithDraft).toFixed(2);
      console.log(`| ${temperature} | ${name} | ${per(totals.sampled)} | ${per(totals.verified)} | ${per(totals.accepted)} | ${(totals.accepted / totals.sampled).toFixed(3)} | ${(totals.generated / totals.calls).toFixed(2)} |`);
    }
  }
  await models.release();
}
