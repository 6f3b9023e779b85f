/**
 * One decode measurement in its own process (peak RSS is per process), for bench/runtime.ts.
 * Prints one JSON line: the generated tokens, prefill ms, decode tokens/s (per second of wall
 * time, and per second of this process's CPU time), host ms per token
 * (wall time outside session.run over generated tokens) and peak RSS.
 *
 * Usage: tsx bench/runtime-child.ts <baseline|runtime> <model.onnx> <prompt tokens> <new tokens> <threads>
 */
import { DecoderModel } from "../runtime/decoder.ts";
import { Generator, type EndEvent, type GenerationEvent } from "../runtime/generate.ts";
import { runReference } from "../test/helpers/reference-loop.ts";

export interface ChildResult {
  tokens: number[];
  kvMode: string;
  prefillMs: number;
  decodeTokensPerSecond: number;
  /** Decode tokens per second of this process's CPU time: what other jobs on a shared machine do not change. */
  tokensPerCpuSecond: number;
  hostMsPerToken: number;
  peakKvMiB?: number;
  peakRssMiB: number;
}

/** A deterministic prompt of `length` ids, away from the special ids 0-2. */
export function benchPrompt(length: number): number[] {
  return Array.from({ length }, (_, i) => 3 + ((i * 7919 + 13) % 4000));
}

async function measure(loop: string, modelPath: string, promptLength: number, newTokens: number, threads: number): Promise<Omit<ChildResult, "peakRssMiB">> {
  const prompt = benchPrompt(promptLength);
  if (loop === "baseline") {
    const run = await runReference(modelPath, prompt, newTokens, { intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: "all" });
    return {
      tokens: run.tokens,
      kvMode: "present (fed back)",
      prefillMs: run.prefillMs,
      decodeTokensPerSecond: ((newTokens - 1) * 1000) / run.decodeMs,
      tokensPerCpuSecond: ((newTokens - 1) * 1000) / run.decodeCpuMs,
      hostMsPerToken: (run.prefillMs + run.decodeMs - run.sessionRunMs) / newTokens,
    };
  }
  const model = await DecoderModel.open(modelPath, { device: "cpu", threads });
  try {
    const { end, decodeCpuSeconds } = await drainTimed(new Generator(model).stream(prompt, { maxTokens: newTokens, eosTokenIds: [] }));
    const { tokens, stats } = end;
    return {
      tokens,
      kvMode: model.contract.kvMode,
      prefillMs: stats.prefillMs,
      decodeTokensPerSecond: stats.decodeTokensPerSecond,
      tokensPerCpuSecond: (newTokens - 1) / decodeCpuSeconds,
      hostMsPerToken: stats.hostMs / newTokens,
      peakKvMiB: stats.peakKvBytes / 2 ** 20,
    };
  } finally {
    await model.release();
  }
}

if (process.argv[1] === import.meta.filename) {
  const [loop, modelPath, promptLength, newTokens, threads] = process.argv.slice(2);
  const result = await measure(loop!, modelPath!, Number(promptLength), Number(newTokens), Number(threads));
  process.stdout.write(JSON.stringify({ ...result, peakRssMiB: process.resourceUsage().maxRSS / 1024 }) + "\n");
}

/** Runs a generation to its end event, with the CPU seconds spent from its first token on (the decode, without the prefill). */
export async function drainTimed(events: AsyncIterable<GenerationEvent>): Promise<{ end: EndEvent; decodeCpuSeconds: number }> {
  let decodeCpu: NodeJS.CpuUsage | undefined;
  let end: EndEvent | undefined;
  for await (const event of events) {
    if (event.kind === "end") end = event;
    decodeCpu ??= process.cpuUsage();
  }
  const cpu = process.cpuUsage(decodeCpu);
  if (!end) throw new Error("the generation ended without an end event");
  return { end, decodeCpuSeconds: (cpu.user + cpu.system) / 1e6 };
}
