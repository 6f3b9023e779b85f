/**
 * Speculative decoding against the non-speculative pipec runtime and the plain onnxruntime
 * loop (test/helpers/reference-loop.ts), per draft source and length policy, on input-grounded prompts
 * (the prompt, the model's own continuation, the prompt again: the answer repeats the context)
 * and open-ended ones. Greedy, batch 1, one intra-op thread.
 *
 * Targets: the project's trained model (examples/models/<name>/model.onnx) when it exists,
 * stories260K (../shared, a trained llama2.c model, converted with importLlama2c) and the zoo's
 * 10M model (random weights, built by bench/zoo.ts). Speculation runs on the models a .pipe
 * compiles for it (compileSource): greedy lookup and draft-model speculation on the target plus
 * the logits-topk pass (argmax ids instead of [S, V] logits), Token Recycling on the target
 * plus tree-attention-mask and logits-topk. "pipec plain" is the unchanged model, as a .pipe
 * without speculation runs it; "pipec plain (ids model)" is plain decoding on the speculation
 * model, so the last column separates what speculation gains from what the ids alone gain.
 * Draft models: a random zoo model with the target's vocabulary (a draft that is never right),
 * the target itself (always right, but as slow as the target) and between them the
 * layer-skipped self-draft (the self-draft pass, every other layer kept). Every mode runs on the
 * trained model; the others run the default policies only (adaptive, recycle auto).
 *
 * Measurement: every model is opened --sessions times: identical model files loaded into
 * different sessions run at persistently different speeds (speculative-setup.ts, openSlots), so
 * a ratio between two sessions carries that spread. Each pair of runs (a configuration and plain, on one prompt)
 * uses one session slot for both, and the slots rotate over prompts and passes, so every
 * configuration's times average over the same placements. Every configuration first runs one
 * prompt untimed per slot (one-off costs such as a draft model's cost measurement; the
 * adaptive guards, kept per session across requests, start learning there).
 * A timed run repeats its prompt until plain decoding would take at least --min-ms (on a tiny
 * model one 64-token request is 30 ms, where a collection or a cache miss in between moves a
 * ratio by 10-20%). Then each pass runs every configuration on every prompt, each run right next
 * to a plain run on the same prompt (which goes first alternates), so a burst of load elsewhere
 * hits both alike. Two ratios to plain: "best" takes, per prompt, the fastest of the
 * configuration's runs and the fastest of the plain runs next to them (as many of each: other
 * work only ever adds time), summed over the prompts; "median pair" is the median over every
 * pair (prompt and pass) of plain's time over the configuration's, which a single lucky or
 * unlucky run cannot move. Rates are the best pass. Every configuration must produce exactly
 * --tokens tokens per prompt (no EOS stop), or the bench fails.
 *
 * Usage: npx tsx bench/speculative.ts [--tokens 48] [--prompts 4] [--passes 3] [--min-ms 150] [--sessions 3] [--only <target name part>]
 */
import { loadavg } from "node:os";
import { Generator, type RecycleSpeculation, type SpeculateOptions, type SpeculativeStats } from "../runtime/index.ts";
import { runReference } from "../test/helpers/reference-loop.ts";
import { benchTargets, median, openSpeculationModels, promptSets, type Target } from "./speculative-setup.ts";

const args = process.argv.slice(2);
const option = (name: string, fallback: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : fallback);
const TOKENS = Number(option("--tokens", "48"));
const PROMPTS = Number(option("--prompts", "4"));
/** Each configuration runs this many times over all prompts. */
const PASSES = Number(option("--passes", "3"));
const ONLY = option("--only", "");
/** A timed run repeats its prompt until plain decoding would take this long. */
const MIN_MS = Number(option("--min-ms", "150"));
/** Sessions per model: each pair of runs uses one slot, rotating (see Measurement above). */
const SESSIONS = Number(option("--sessions", "3"));

interface Row {
  target: string;
  prompts: string;
  mode: string;
  tokensPerSecond: number;
  /** Not for the baseline loop: it measures wall time only. */
  tokensPerCpuSecond?: number;
  vsPipecCpu?: number;
  vsPipec?: number;
  vsBaseline?: number;
  /** Median over the pairs of plain's CPU time over this configuration's. */
  medianPairCpu?: number;
  /** Against plain decoding on the same model file (CPU time). */
  vsSameModelCpu?: number;
  /** The same from the median pairs. */
  medianSameModelCpu?: number;
  stats?: SpeculativeStats[];
}

/** One configuration: how it runs one prompt in session slot `slot`, and which plain configuration runs its model. */
interface Config {
  run: (prompt: number[], slot: number) => Promise<{ tokens: number; stats?: SpeculativeStats; wallMs?: number }>;
  samePlain?: string;
}

async function benchTarget(target: Target): Promise<Row[]> {
  const models = await openSpeculationModels(target, SESSIONS);
  const { original: model, ids, tree, useless, layerSkip: selfDraft, vocabSize: V } = models;
  const [generator, idsGenerator, treeGenerator] = [model, ids, tree].map((slots) => slots.map((m) => new Generator(m)));
  /** Per mode, its speculation settings in a slot (a draft model is the slot's session of it). */
  const modes: Record<string, (slot: number) => SpeculateOptions | RecycleSpeculation> = {
    "lookup k=10": () => ({ kind: "lookup", draftLength: 10 }),
    "lookup adaptive": () => ({ kind: "lookup" }),
    "self-draft k=4": (slot) => ({ kind: "draft", model: ids[slot]!, draftLength: 4 }),
    "self-draft adaptive": (slot) => ({ kind: "draft", model: ids[slot]! }),
    "layer-skip self-draft k=4": (slot) => ({ kind: "draft", model: selfDraft[slot]!, draftLength: 4 }),
    "layer-skip self-draft adaptive": (slot) => ({ kind: "draft", model: selfDraft[slot]! }),
    "useless draft k=4": (slot) => ({ kind: "draft", model: useless[slot]!, draftLength: 4 }),
    "useless draft adaptive": (slot) => ({ kind: "draft", model: useless[slot]! }),
    "recycle auto": () => ({ kind: "recycle" }),
    "recycle tree=80": () => ({ kind: "recycle", tree: 80 }),
  };
  // Beyond the trained model only the default (adaptive) policies run, to keep the bench near five minutes.
  if (!target.name.startsWith("trained")) {
    for (const mode of Object.keys(modes)) if (!mode.includes("adaptive") && mode !== "recycle auto") delete modes[mode];
  }
  const configs = new Map<string, Config>();
  configs.set("baseline loop", {
    run: async (prompt) => {
      const run = await runReference(target.path, prompt, TOKENS, { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: "all" });
      return { tokens: run.tokens.length, wallMs: run.prefillMs + run.decodeMs };
    },
  });
  const plainRun = (g: Generator[]) => async (prompt: number[], slot: number) => ({ tokens: (await g[slot]!.run(prompt, { maxTokens: TOKENS, eosTokenIds: [] })).tokens.length });
  configs.set("pipec plain", { run: plainRun(generator!) });
  configs.set("pipec plain (ids model)", { run: plainRun(idsGenerator!), samePlain: "pipec plain" });
  configs.set("pipec plain (recycle model)", { run: plainRun(treeGenerator!), samePlain: "pipec plain" });
  for (const [mode, speculateIn] of Object.entries(modes)) {
    const recycle = speculateIn(0).kind === "recycle";
    const [g, samePlain] = recycle ? [treeGenerator!, "pipec plain (recycle model)"] : [idsGenerator!, "pipec plain (ids model)"];
    configs.set(mode, {
      samePlain,
      run: async (prompt, slot) => {
        const result = await g[slot]!.run(prompt, { maxTokens: TOKENS, eosTokenIds: [], speculate: speculateIn(slot) });
        return { tokens: result.tokens.length, stats: result.stats.speculative };
      },
    });
  }

  const rows: Row[] = [];
  const sets = await promptSets(generator![0]!, V, PROMPTS, TOKENS);
  // Untimed, once per slot: one-off costs (a draft model's cost measurement, first calls at new sizes) are not what a pass measures.
  for (let slot = 0; slot < SESSIONS; slot++) for (const config of configs.values()) await config.run(sets.open![0]!, slot);
  // Repeats per timed run, from plain decoding's fastest of three on the shortest prompt.
  let plainMs = Infinity;
  for (let r = 0; r < 3; r++) {
    const t0 = performance.now();
    await configs.get("pipec plain")!.run(sets.open![0]!, 0);
    plainMs = Math.min(plainMs, performance.now() - t0);
  }
  const repeats = Math.max(1, Math.ceil(MIN_MS / plainMs));
  repeatsUsed.set(target.name, repeats);
  const measure = async (name: string, prompt: number[], where: string, slot: number) => {
    let cpuMs = 0;
    let wallMs = 0;
    let stats: SpeculativeStats | undefined;
    for (let r = 0; r < repeats; r++) {
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      const result = await configs.get(name)!.run(prompt, slot);
      const cpu = process.cpuUsage(c0);
      const wall = performance.now() - t0;
      // Every configuration must produce the same number of tokens, or its rate compares nothing.
      if (result.tokens !== TOKENS) throw new Error(`${target.name} ${where} ${name}: ${result.tokens} tokens, not ${TOKENS}`);
      cpuMs += (cpu.user + cpu.system) / 1000;
      wallMs += result.wallMs ?? wall;
      stats = result.stats;
    }
    return { cpu: cpuMs, wall: wallMs, stats };
  };
  for (const [set, prompts] of Object.entries(sets)) {
    const others = [...configs.keys()].filter((name) => name !== "pipec plain");
    /** Per configuration: its time per pass (all prompts); per configuration and prompt, its runs and the plain runs next to them. */
    const totals = new Map<string, { cpu: number; wall: number }[]>([...configs.keys()].map((name) => [name, []]));
    type Times = { cpu: number; wall: number }[];
    const pairs = new Map<string, { plain: Times; run: Times }[]>(others.map((name) => [name, prompts.map(() => ({ plain: [], run: [] }))]));
    const stats = new Map<string, SpeculativeStats[]>();
    const pairsRun = new Map<string, number>(others.map((name, j) => [name, j]));
    for (let pass = 0; pass < PASSES; pass++) {
      const total = new Map<string, { cpu: number; wall: number }>([...configs.keys()].map((name) => [name, { cpu: 0, wall: 0 }]));
      for (const [i, prompt] of prompts.entries()) {
        const order = (pass + i) % 2 ? [...others].reverse() : others;
        for (const [j, name] of order.entries()) {
          // Each configuration runs right next to a plain run on the same prompt (either first),
          // so both see the same load; plain's own rate counts one of its runs per prompt (the middle one's).
          const plainFirst = (pass + i + j) % 2 === 0;
          // Each configuration's pairs take the slots in turn, so they cover every slot evenly.
          const slot = pairsRun.get(name)! % SESSIONS;
          pairsRun.set(name, pairsRun.get(name)! + 1);
          const first = await measure(plainFirst ? "pipec plain" : name, prompt, set, slot);
          const second = await measure(plainFirst ? name : "pipec plain", prompt, set, slot);
          const [plain, run] = plainFirst ? [first, second] : [second, first];
          pairs.get(name)![i]!.plain.push(plain);
          pairs.get(name)![i]!.run.push(run);
          total.get(name)!.cpu += run.cpu;
          total.get(name)!.wall += run.wall;
          if (j === order.length >> 1) {
            total.get("pipec plain")!.cpu += plain.cpu;
            total.get("pipec plain")!.wall += plain.wall;
          }
          if (pass === PASSES - 1 && run.stats) stats.set(name, [...(stats.get(name) ?? []), run.stats]);
        }
      }
      for (const [name, t] of total) totals.get(name)!.push(t);
    }
    const tokens = TOKENS * prompts.length * repeats;
    const best = (name: string, key: "cpu" | "wall") => (tokens * 1000) / Math.min(...totals.get(name)!.map((t) => t[key]));
    /**
     * Plain / `name`: per prompt the fastest of its runs and the fastest of the plain runs next to
     * them (as many of each; other work only ever adds time), summed over the prompts.
     */
    const vsPlain = (name: string, key: "cpu" | "wall") => {
      const fastest = (times: Times) => Math.min(...times.map((t) => t[key]));
      const byPrompt = pairs.get(name)!;
      return byPrompt.reduce((sum, p) => sum + fastest(p.plain), 0) / byPrompt.reduce((sum, p) => sum + fastest(p.run), 0);
    };
    /** Plain / `name`, the median over every pair (prompt and pass) of its runs. */
    const medianPair = (name: string, key: "cpu" | "wall") => median(pairs.get(name)!.flatMap((p) => p.plain.map((plain, k) => plain[key] / p.run[k]![key])));
    const plainVsBaseline = 1 / vsPlain("baseline loop", "wall");
    for (const name of configs.keys()) {
      const speculative = name !== "baseline loop" && name !== "pipec plain";
      const samePlain = configs.get(name)!.samePlain;
      rows.push({
        target: target.name, prompts: set, mode: name,
        tokensPerSecond: best(name, "wall"),
        tokensPerCpuSecond: name === "baseline loop" ? undefined : best(name, "cpu"),
        vsPipecCpu: speculative ? vsPlain(name, "cpu") : undefined,
        vsPipec: speculative ? vsPlain(name, "wall") : undefined,
        medianPairCpu: speculative ? medianPair(name, "cpu") : undefined,
        vsBaseline: name === "baseline loop" ? undefined : (name === "pipec plain" ? 1 : vsPlain(name, "wall")) * plainVsBaseline,
        vsSameModelCpu: samePlain && samePlain !== "pipec plain" && !name.startsWith("pipec plain") ? vsPlain(name, "cpu") / vsPlain(samePlain, "cpu") : undefined,
        medianSameModelCpu: samePlain && samePlain !== "pipec plain" && !name.startsWith("pipec plain") ? medianPair(name, "cpu") / medianPair(samePlain, "cpu") : undefined,
        stats: stats.get(name),
      });
    }
  }
  await models.release();
  return rows;
}

function aggregate(stats: SpeculativeStats[] | undefined): { acceptance: string; accepted: string; calls: string } {
  if (!stats?.length) return { acceptance: "", accepted: "", calls: "" };
  const sum = (key: "acceptedTokens" | "draftedTokens" | "callsWithDraft" | "targetCalls" | "generatedTokens") => stats.reduce((s, x) => s + x[key], 0);
  return {
    acceptance: sum("draftedTokens") ? (sum("acceptedTokens") / sum("draftedTokens")).toFixed(2) : "-",
    accepted: sum("callsWithDraft") ? (sum("acceptedTokens") / sum("callsWithDraft")).toFixed(2) : "-",
    calls: (sum("targetCalls") / sum("generatedTokens")).toFixed(2),
  };
}

/** Per target: how many times a timed run repeats its prompt. */
const repeatsUsed = new Map<string, number>();
const load0 = loadavg();
const rows: Row[] = [];
for (const target of benchTargets(ONLY)) rows.push(...(await benchTarget(target)));
const load1 = loadavg();

const header = ["target", "prompts", "mode", "tok/s", "tok/cpu-s", "vs pipec (cpu)", "vs pipec (wall)", "median pair (cpu)", "vs baseline (wall)", "vs same-model plain (cpu)", "same-model median pair", "accept", "mean acc len", "calls/token"];
const lines = rows.map((r) => {
  const a = aggregate(r.stats);
  const x = (v: number | undefined) => v?.toFixed(2) ?? "";
  return [r.target, r.prompts, r.mode, r.tokensPerSecond.toFixed(0), r.tokensPerCpuSecond?.toFixed(0) ?? "", x(r.vsPipecCpu), x(r.vsPipec), x(r.medianPairCpu), x(r.vsBaseline), x(r.vsSameModelCpu), x(r.medianSameModelCpu), a.acceptance, a.accepted, a.calls];
});
const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
const format = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
const passes = `${args.includes("--passes") ? ` --passes ${PASSES}` : ""}${args.includes("--min-ms") ? ` --min-ms ${MIN_MS}` : ""}${args.includes("--sessions") ? ` --sessions ${SESSIONS}` : ""}`;
const repeatNote = [...repeatsUsed].map(([name, n]) => `${name} x${n}`).join(", ");
const only = ONLY ? ` --only '${ONLY}'` : "";
console.log(`\nnpx tsx bench/speculative.ts --tokens ${TOKENS} --prompts ${PROMPTS}${passes}${only}   (greedy, ${TOKENS} new tokens per prompt, ${PASSES} passes: each run next to a plain run on the same prompt and repeated to at least ${MIN_MS} ms of plain decoding (${repeatNote}), ${SESSIONS} sessions per model rotating over the pairs, ratios from the fastest of each per prompt and the median pair, rates the best pass; 1 thread; load average ${load0.map((l) => l.toFixed(2)).join(" ")} at the start, ${load1.map((l) => l.toFixed(2)).join(" ")} at the end)\n`);
console.log(format(header));
console.log(format(widths.map((w) => "-".repeat(w))));
for (const line of lines) console.log(format(line));
const slower = rows.filter((r) => r.vsPipecCpu !== undefined && r.vsPipecCpu < 1 && !r.mode.startsWith("pipec plain"));
console.log(`\nslower than plain pipec (cpu): ${slower.map((r) => `${r.target} ${r.prompts} ${r.mode} (${r.vsPipecCpu!.toFixed(2)}x)`).join("; ") || "none"}`);
const adaptive = (r: Row) => r.mode.includes("adaptive") || r.mode === "recycle auto";
const adaptiveBelow = slower.filter((r) => adaptive(r) && r.vsPipecCpu! < 0.95);
console.log(`adaptive below 0.95x (cpu, best): ${adaptiveBelow.map((r) => `${r.target} ${r.prompts} ${r.mode} (${r.vsPipecCpu!.toFixed(2)}x cpu, ${r.vsPipec!.toFixed(2)}x wall, ${r.medianPairCpu!.toFixed(2)}x median pair)`).join("; ") || "none"}`);
const medianBelow = rows.filter((r) => adaptive(r) && r.medianPairCpu !== undefined && r.medianPairCpu < 0.95);
console.log(`adaptive below 0.95x (cpu, median pair): ${medianBelow.map((r) => `${r.target} ${r.prompts} ${r.mode} (${r.medianPairCpu!.toFixed(2)}x; best ${r.vsPipecCpu!.toFixed(2)}x)`).join("; ") || "none"}`);
const controls = rows.filter((r) => r.mode.startsWith("pipec plain (") && r.medianPairCpu !== undefined);
console.log(`noise controls (plain on the compiled models), median pair / best (cpu): ${controls.map((r) => `${r.target} ${r.prompts} ${r.mode.slice(12)} ${r.medianPairCpu!.toFixed(2)} / ${r.vsPipecCpu!.toFixed(2)}`).join("; ")}`);
