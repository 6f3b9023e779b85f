/**
 * Runtime benchmark (issue 5): the plain baseline loop against pipec's runtime, same model, same
 * prompt, same tokens out (asserted), every variant in its own process.
 *
 *   npx tsx bench/runtime.ts [--threads N] [--skip-800m]
 *
 * 1. Context scaling on a ~5M zoo Llama with 4K positions (where per-step host work and cache
 *    copies dominate): decode tokens/s at 128, 1K and 4K tokens of context, prefill time, host ms
 *    per token, peak KV and peak RSS; the ratio to the baseline side by side.
 * 2. The ~800M zoo Llama at 128 tokens of context: decode tokens/s as a fraction of the
 *    memory-bandwidth limit (weight bytes per token over the bandwidth of a large
 *    matrix-vector product, measured in this run).
 * Speeds are per second of wall time and per second of the process's CPU time. On a shared
 * machine other jobs stretch wall time arbitrarily; CPU time of a single intra-op thread
 * (the default) is what the work costs, so ratios and the bandwidth fraction use it.
 * Models are built on first use under bench/models/ (git-ignored; the 800M one takes minutes).
 */
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { dirname, join } from "node:path";
import { loadModel, saveModel } from "../graph/onnx/index.ts";
import { createKvAppendOnly } from "../passes/kv/kv-append-only.ts";
import { measureMatVecBandwidth, weightBytesPerToken } from "./bandwidth.ts";
import type { ChildResult } from "./runtime-child.ts";
import { ensureBenchModel } from "./zoo.ts";

const ROOT = join(import.meta.dirname, "..");
const args = process.argv.slice(2);
const flag = (name: string, fallback: number) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : fallback);
// One thread by default: its CPU time is the work done, whatever else runs on the machine.
const THREADS = flag("--threads", 1);
const COMMAND = `npx tsx bench/runtime.ts${args.length ? ` ${args.join(" ")}` : ""}`;

interface Variant {
  name: string;
  loop: "baseline" | "runtime";
  model: string;
}

/** The model rewritten by the kv-append-only pass, in a folder next to the original's (weights cloned or copied). */
function appendOnlyVariant(modelPath: string, splitAttention: boolean): string {
  const dir = `${dirname(modelPath)}-kv-append${splitAttention ? "-split" : ""}`;
  const target = join(dir, "model.onnx");
  const model = loadModel(modelPath);
  createKvAppendOnly().run(model, { options: { split_attention: splitAttention }, note: () => {} });
  saveModel(model, target);
  const config = join(dirname(modelPath), "config.json");
  if (existsSync(config)) copyFileSync(config, join(dir, "config.json"));
  return target;
}

function variants(modelPath: string): Variant[] {
  return [
    { name: "baseline loop", loop: "baseline", model: modelPath },
    { name: "pipec, present cache", loop: "runtime", model: modelPath },
    { name: "pipec, kv-append-only", loop: "runtime", model: appendOnlyVariant(modelPath, false) },
    { name: "pipec, kv-append-only(split_attention)", loop: "runtime", model: appendOnlyVariant(modelPath, true) },
  ];
}

function child(variant: Variant, promptTokens: number, newTokens: number, threads: number): ChildResult {
  const out = execFileSync(
    process.execPath,
    ["--import", "tsx", join(ROOT, "bench/runtime-child.ts"), variant.loop, variant.model, String(promptTokens), String(newTokens), String(threads)],
    { cwd: ROOT, encoding: "utf8", maxBuffer: 1 << 26 },
  );
  return JSON.parse(out.trim().split("\n").pop()!);
}

/** Runs every variant; throws unless they all generate the baseline's tokens. */
function compare(label: string, list: Variant[], promptTokens: number, newTokens: number, threads: number): ChildResult[] {
  const results = list.map((v) => child(v, promptTokens, newTokens, threads));
  results.forEach((r, i) => {
    if (r.tokens.join() !== results[0]!.tokens.join()) throw new Error(`${label}: ${list[i]!.name} generated different tokens than ${list[0]!.name}`);
  });
  return results;
}

function ratio(value: number, base: number): string {
  return `${(value / base).toFixed(2)}x`;
}

function table(title: string, header: string[], rows: (string | number)[][]): void {
  console.log(`\n${title}\n`);
  const cells = [header, ...rows.map((r) => r.map((c) => (typeof c === "number" ? c.toFixed(c < 10 ? 2 : c < 100 ? 1 : 0) : c)))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => String(r[i]).length)));
  const line = (r: (string | number)[]) => `| ${r.map((c, i) => String(c).padEnd(widths[i]!)).join(" | ")} |`;
  console.log(line(cells[0]!));
  console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
  for (const r of cells.slice(1)) console.log(line(r));
}

const started = performance.now();
console.log(`${COMMAND}   (${cpus().length} cores, load average ${loadavg().map((l) => l.toFixed(1)).join(" ")}, ${THREADS} intra-op thread(s))`);

// 1. Context scaling on the ~5M model. At 4K the prefill dominates the bench's time, so the
// present cache (measured at 128 and 1K) sits that one out.
const small = variants(ensureBenchModel("5m"));
const contextRows: (string | number)[][] = [];
for (const [context, newTokens] of [[128, 64], [1024, 64], [4096 - 32, 32]] as const) {
  const list = context > 1024 ? small.filter((v) => v.name !== "pipec, present cache") : small;
  const results = compare(`context ${context}`, list, context, newTokens, THREADS);
  const base = results[0]!;
  results.forEach((r, i) => {
    contextRows.push([
      i === 0 ? context + newTokens : "", list[i]!.name, r.prefillMs,
      r.decodeTokensPerSecond, r.tokensPerCpuSecond, ratio(r.tokensPerCpuSecond, base.tokensPerCpuSecond),
      r.hostMsPerToken, r.peakKvMiB ?? "-", r.peakRssMiB,
    ]);
  });
}
table(
  "1. ~5M zoo Llama (4 layers, 8 heads / 4 KV heads x D 32, 4K positions): greedy decode, same tokens in every row",
  ["context", "loop", "prefill ms", "decode tok/s (wall)", "decode tok/CPU-s", "vs baseline (CPU)", "host ms/token", "peak KV MiB", "peak RSS MiB"],
  contextRows,
);

// 2. The ~800M model against the memory-bandwidth limit, both sides per second of CPU time.
if (!args.includes("--skip-800m")) {
  const path = ensureBenchModel("800m");
  const bytes = weightBytesPerToken(path);
  const large = variants(path).filter((v) => v.name === "baseline loop" || v.name === "pipec, kv-append-only(split_attention)");
  // Other jobs contend for memory bandwidth too: measure it before and after the decodes and
  // take the higher, the stricter limit.
  const before = await measureMatVecBandwidth(THREADS);
  const results = compare("800M", large, 120, 8, THREADS);
  const after = await measureMatVecBandwidth(THREADS);
  const bandwidth = Math.max(before, after);
  const limit = bandwidth / bytes;
  table(
    `2. ~800M zoo Llama at 128 tokens of context: ${(bytes / 1e9).toFixed(2)} GB of weights per token; [1, 8192] x [8192, 8192] MatMul streams ${(before / 1e9).toFixed(1)} / ${(after / 1e9).toFixed(1)} GB/CPU-s (before / after) -> limit ${limit.toFixed(2)} tok/CPU-s`,
    ["loop", "decode tok/s (wall)", "decode tok/CPU-s", "of bandwidth limit", "vs baseline (CPU)", "peak RSS MiB"],
    results.map((r, i) => [
      large[i]!.name, r.decodeTokensPerSecond, r.tokensPerCpuSecond, `${((100 * r.tokensPerCpuSecond) / limit).toFixed(0)}%`,
      ratio(r.tokensPerCpuSecond, results[0]!.tokensPerCpuSecond), r.peakRssMiB,
    ]),
  );
}
console.log(`\n${COMMAND}: ${((performance.now() - started) / 1000).toFixed(0)} s`);
