/**
 * The adaptive policy's floor (issue 7: speculation with the adaptive policy never below 0.95x
 * of plain pipec), measured as two factors that each compare like with like:
 *
 * - policy: a mode against plain decoding on the same session of the model it runs on (the one
 *   a .pipe compiles for it), one request each, alternating which goes first, over --rounds
 *   rounds spread across --sessions session slots. Whatever the mode costs beyond plain decoding
 *   (the guard, probes, drafting that lost, host work) shows here, and nothing else does.
 * - model: plain decoding on that compiled model against plain decoding on the original file,
 *   the same way, each pair in one slot of each. Identical files differ by several percent per
 *   session (speculative-setup.ts, openSlots); the slots average that out.
 *
 * floor = policy x model: the mode against plain pipec on the original model. Each factor is the
 * median of per-round time ratios (plain over the other), with a 90% bootstrap interval; the
 * floor's interval multiplies the bounds (conservative). Wall time is the issue's measure
 * (tokens per second); the CPU-time floor is shown beside it: it also counts V8's background
 * threads (concurrent GC), which run on the other core while a request waits on onnxruntime, so
 * an allocating path reads a few percent worse by CPU than by wall. A null mode (plain against
 * plain on the same session) shows the method's own bias. bench/speculative.ts gives the
 * speedups, rates and acceptance; this bench asks one question, precisely: whether any mode's
 * adaptive policy costs more than 5%. Greedy, one intra-op thread, 64 new tokens, no EOS stop.
 *
 * Usage: npx tsx bench/speculative-floor.ts [--rounds 64] [--sessions 8] [--prompts 4] [--tokens 64] [--only <target name part>] [--zoo]
 */
import { loadavg } from "node:os";
import { DecoderModel, Generator, type RecycleSpeculation, type SpeculateOptions } from "../runtime/index.ts";
import { benchTargets, median, openSpeculationModels, promptSets, type Target } from "./speculative-setup.ts";

const args = process.argv.slice(2);
const option = (name: string, fallback: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : fallback);
const ROUNDS = Number(option("--rounds", "64"));
/** Session slots per model. Sessions of one file differ persistently, so the model factor needs many: with 4, its 90% intervals were up to 0.13 wide; with 8, at most 0.065. */
const SESSIONS = Number(option("--sessions", "8"));
const PROMPTS = Number(option("--prompts", "4"));
const TOKENS = Number(option("--tokens", "64"));
const ONLY = option("--only", "");
/** zoo-10m (random weights) is slow and says little the trained models do not; on request. */
const WITH_ZOO = args.includes("--zoo");

/** A median and its 90% bootstrap interval. */
interface Estimate {
  median: number;
  low: number;
  high: number;
}

/** The median of `ratios` and its 90% bootstrap interval; resamples with a fixed-seed generator, so the same ratios give the same interval. */
function estimate(ratios: readonly number[]): Estimate {
  let state = 12345;
  const next = () => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const medians = Array.from({ length: 2000 }, () => median(ratios.map(() => ratios[Math.floor(next() * ratios.length)]!))).sort((a, b) => a - b);
  return { median: median(ratios), low: medians[Math.floor(0.05 * medians.length)]!, high: medians[Math.floor(0.95 * medians.length)]! };
}

type Run = (prompt: number[], slot: number) => Promise<number>;

interface Times {
  wall: number;
  cpu: number;
}

/** Wall and CPU milliseconds of one request. */
async function timed(run: Run, prompt: number[], slot: number): Promise<Times> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const tokens = await run(prompt, slot);
  const wall = performance.now() - t0;
  const used = process.cpuUsage(c0);
  if (tokens !== TOKENS) throw new Error(`${tokens} tokens, not ${TOKENS}`);
  return { wall, cpu: (used.user + used.system) / 1000 };
}

/** One round: both requests' times. */
interface Round {
  reference: Times;
  other: Times;
}

/** Plain decoding (`reference`) against `other`, measured in rounds. */
interface Comparison {
  reference: Run;
  other: Run;
  rounds: Round[];
}

/**
 * Every comparison, ROUNDS rounds each (slot round % SESSIONS, prompt round % prompts), both
 * requests timed, which goes first alternating. The comparisons take each round in turn from a
 * rotating start, so a busy minute on the machine falls on all of them alike rather than on one.
 */
async function measure(comparisons: readonly Comparison[], prompts: number[][]): Promise<void> {
  // Untimed, every slot and prompt once: first calls at new sizes, cost measurements, guards that start learning.
  for (const { reference, other } of comparisons) {
    for (let slot = 0; slot < SESSIONS; slot++) {
      for (const prompt of prompts) {
        await reference(prompt, slot);
        await other(prompt, slot);
      }
    }
  }
  for (let round = 0; round < ROUNDS; round++) {
    const [p, slot] = [round % prompts.length, round % SESSIONS];
    for (let i = 0; i < comparisons.length; i++) {
      const { reference, other, rounds } = comparisons[(round + i) % comparisons.length]!;
      const [first, second] = round % 2 ? [reference, other] : [other, reference];
      const a = await timed(first, prompts[p]!, slot);
      const b = await timed(second, prompts[p]!, slot);
      rounds.push(round % 2 ? { reference: a, other: b } : { reference: b, other: a });
    }
  }
}

/** One factor: the median of per-round ratios by each clock. */
interface Factor {
  wall: Estimate;
  cpu: Estimate;
}

const factor = (all: Round[]): Factor => ({
  wall: estimate(all.map((r) => r.reference.wall / r.other.wall)),
  cpu: estimate(all.map((r) => r.reference.cpu / r.other.cpu)),
});

interface Row {
  target: string;
  prompts: string;
  mode: string;
  policy: Factor;
  model?: Factor;
}

async function floorOf(target: Target): Promise<Row[]> {
  const models = await openSpeculationModels(target, SESSIONS);
  const { original, ids, tree, useless, layerSkip: selfDraft, vocabSize: V } = models;
  /** Requests on `models` (a generator per slot), speculating as `speculate` says for the slot, or not at all. */
  const speculating = (models: DecoderModel[], speculate: (slot: number) => SpeculateOptions | RecycleSpeculation | undefined): Run => {
    const generators = models.map((m) => new Generator(m));
    return async (prompt, slot) => (await generators[slot]!.run(prompt, { maxTokens: TOKENS, eosTokenIds: [], speculate: speculate(slot) })).tokens.length;
  };
  const plainOn = (models: DecoderModel[]): Run => speculating(models, () => undefined);
  const modes: { mode: string; models: DecoderModel[]; run: Run }[] = [
    { mode: "null (plain against plain)", models: ids, run: plainOn(ids) },
    { mode: "lookup adaptive", models: ids, run: speculating(ids, () => ({ kind: "lookup" })) },
    { mode: "self-draft adaptive", models: ids, run: speculating(ids, (slot) => ({ kind: "draft", model: ids[slot]! })) },
    { mode: "layer-skip self-draft adaptive", models: ids, run: speculating(ids, (slot) => ({ kind: "draft", model: selfDraft[slot]! })) },
    { mode: "useless draft adaptive", models: ids, run: speculating(ids, (slot) => ({ kind: "draft", model: useless[slot]! })) },
    { mode: "recycle auto", models: tree, run: speculating(tree, () => ({ kind: "recycle" })) },
  ];
  const sets = await promptSets(new Generator(original[0]!), V, PROMPTS, TOKENS);
  const plain = new Map([original, ids, tree].map((m) => [m, plainOn(m)]));
  const compare = (reference: Run, other: Run): Comparison => ({ reference, other, rounds: [] });
  const rows: Row[] = [];
  for (const [set, prompts] of Object.entries(sets)) {
    const compiled = new Map([ids, tree].map((m) => [m, compare(plain.get(original)!, plain.get(m)!)]));
    const policies = modes.map(({ models, run }) => compare(plain.get(models)!, run));
    await measure([...compiled.values(), ...policies], prompts);
    const modelFactor = new Map([...compiled].map(([m, c]) => [m, factor(c.rounds)]));
    modes.forEach(({ mode, models }, i) => {
      rows.push({ target: target.name, prompts: set, mode, policy: factor(policies[i]!.rounds), model: mode.startsWith("null") ? undefined : modelFactor.get(models) });
    });
  }
  await models.release();
  return rows;
}

const load0 = loadavg();
const rows: Row[] = [];
for (const target of benchTargets(ONLY, WITH_ZOO)) rows.push(...(await floorOf(target)));
const load1 = loadavg();

const show = (e: Estimate | undefined) => (e ? `${e.median.toFixed(3)} [${e.low.toFixed(3)}, ${e.high.toFixed(3)}]` : "");
const product = (a: Estimate, b: Estimate): Estimate => ({ median: a.median * b.median, low: a.low * b.low, high: a.high * b.high });
const flags = [["--rounds", ROUNDS], ["--sessions", SESSIONS], ["--prompts", PROMPTS], ["--tokens", TOKENS]].filter(([name]) => args.includes(name as string)).map(([name, v]) => ` ${name} ${v}`).join("");
console.log(`\nnpx tsx bench/speculative-floor.ts${flags}${ONLY ? ` --only '${ONLY}'` : ""}${WITH_ZOO ? " --zoo" : ""}   (${ROUNDS} rounds per factor, ${SESSIONS} sessions per model, ${TOKENS} new tokens, greedy, 1 thread; medians of per-round time ratios with 90% bootstrap intervals; load average ${load0.map((l) => l.toFixed(2)).join(" ")} at the start, ${load1.map((l) => l.toFixed(2)).join(" ")} at the end)\n`);
const header = ["target", "prompts", "mode", "policy (wall, same session)", "model (wall, compiled vs original)", "floor: vs plain pipec (wall)", "floor (cpu)"];
const lines = rows.map((r) => [r.target, r.prompts, r.mode, show(r.policy.wall), show(r.model?.wall), show(r.model && product(r.policy.wall, r.model.wall)), show(r.model ? product(r.policy.cpu, r.model.cpu) : r.policy.cpu)]);
const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
const format = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
console.log(format(header));
console.log(format(widths.map((w) => "-".repeat(w))));
for (const line of lines) console.log(format(line));
for (const clock of ["wall", "cpu"] as const) {
  const below = rows.filter((r) => r.model && product(r.policy[clock], r.model[clock]).median < 0.95);
  console.log(`adaptive below 0.95x of plain pipec (${clock}, median): ${below.map((r) => `${r.target} ${r.prompts} ${r.mode} (${product(r.policy[clock], r.model![clock]).median.toFixed(3)})`).join("; ") || "none"}`);
}
