/**
 * Greedy generation with pipec's runtime in its own process, for bench/real-export.ts: the same
 * prompt twice, "cold" (the process's first generation, right after the model is loaded) and
 * "warm" (the second, in the same process). Prints one JSON line: the load ms, per run the
 * tokens, prefill ms, decode tokens/s (per second of wall and of this process's CPU time), and
 * the peak RSS.
 *
 * Usage: tsx bench/real-export-decode-child.ts <runtime model.onnx | compiled outDir> <prompt tokens> <new tokens> <threads>
 */
import type { GenerationEvent } from "../runtime/generate.ts";
import { benchPrompt, drainTimed } from "./runtime-child.ts";

export interface DecodeRun {
  tokens: number[];
  prefillMs: number;
  decodeTokensPerSecond: number;
  tokensPerCpuSecond: number;
  totalMs: number;
}

export interface DecodeChildResult {
  loadMs: number;
  cold: DecodeRun;
  warm: DecodeRun;
  peakRssMiB: number;
}

const [kind, path, promptLength, newTokens, threads] = process.argv.slice(2);
const prompt = benchPrompt(Number(promptLength));
const maxTokens = Number(newTokens);

type Generate = () => AsyncGenerator<GenerationEvent>;

async function measure(generate: Generate): Promise<DecodeRun> {
  const { end, decodeCpuSeconds } = await drainTimed(generate());
  const { tokens, stats } = end;
  return {
    tokens,
    prefillMs: stats.prefillMs,
    decodeTokensPerSecond: stats.decodeTokensPerSecond,
    tokensPerCpuSecond: (tokens.length - 1) / decodeCpuSeconds,
    totalMs: stats.totalMs,
  };
}

const loadStart = performance.now();
let generate: Generate;
let close: () => Promise<void>;
if (kind === "runtime") {
  const { DecoderModel, Generator } = await import("../runtime/index.ts");
  const model = await DecoderModel.open(path!, { device: "cpu", threads: Number(threads) });
  const generator = new Generator(model);
  generate = () => generator.stream(prompt, { maxTokens, eosTokenIds: [] });
  close = () => model.release();
} else {
  const { loadPipeline } = await import("../compiler/api.ts");
  const pipeline = await loadPipeline(path!, { device: "cpu", threads: Number(threads) });
  generate = () => pipeline.generate(prompt, { maxTokens });
  close = () => pipeline.close();
}
const loadMs = performance.now() - loadStart;
const cold = await measure(generate);
const warm = await measure(generate);
await close();
const result: DecodeChildResult = { loadMs, cold, warm, peakRssMiB: process.resourceUsage().maxRSS / 1024 };
process.stdout.write(JSON.stringify(result) + "\n");
