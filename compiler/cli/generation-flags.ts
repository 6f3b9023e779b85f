// The flags `pipec run` and `pipec generate` share, and how both print what generation yields:
// one spelling of the prompt, limits, device and sampling, one form of ids, stats and --json.
import { existsSync } from "node:fs";
import { parseMethodOption } from "../methods/option.ts";
import { parseSampling, type Device, type GenerationEvent, type GenerationStats, type SamplingConfig } from "../../runtime/index.ts";
import { runtimeSampling } from "../pipeline/runtime-options.ts";
import { parseIds, parsePositiveInt, UsageError } from "./args.ts";
import type { CliIO } from "./io.ts";

const DEVICES: readonly Device[] = ["auto", "cpu", "cuda", "webgpu"];

/** The parseArgs options of the shared flags. */
export const GENERATION_OPTIONS = {
  prompt: { type: "string" },
  ids: { type: "string" },
  "max-tokens": { type: "string" },
  device: { type: "string" },
  threads: { type: "string" },
  sampling: { type: "string" },
  stop: { type: "string", multiple: true },
  json: { type: "boolean" },
  "cache-dir": { type: "string" },
  "reset-warm-state": { type: "boolean" },
} as const;

/** The help lines of the shared flags; `defaults` says where each one's default comes from. */
export function generationHelp(defaults: { maxTokens: string; device: string; sampling: string; cacheDir: string }): string {
  return `  --prompt TEXT       the prompt as text (needs a tokenizer)
  --ids LIST          the prompt as comma-separated token ids
  --max-tokens N      most tokens to generate (${defaults.maxTokens})
  --device D          auto (a GPU if one loads, else cpu), cpu, cuda or webgpu
                      (${defaults.device})
  --threads N         onnxruntime intra-op threads
  --sampling S        greedy, a .pipe method (sample(temperature: 0.8, top_k: 40, seed: 1)),
                      or temperature=0.8,top_k=40,top_p=0.9,repetition_penalty=1.1,seed=1
                      (${defaults.sampling})
  --stop STR          stop before this text (repeatable; needs a tokenizer)
  --json              print {tokens, text, finishReason, stats} at the end instead of streaming
  --cache-dir DIR     where compiled pipelines are kept (${defaults.cacheDir})
  --reset-warm-state  discard what speculation measured and learned in earlier runs of this
                      compiled pipeline (its warm-state.json) and start from nothing
`;
}

type Values = { [K in keyof typeof GENERATION_OPTIONS]?: (typeof GENERATION_OPTIONS)[K] extends { multiple: true } ? string[] : (typeof GENERATION_OPTIONS)[K]["type"] extends "boolean" ? boolean : string };

export interface GenerationFlags {
  /** Absent only where the command needs none (generate --print-pipe): see `promptOf`. */
  prompt?: string | number[];
  maxTokens?: number;
  device?: Device;
  threads?: number;
  /** The runtime's config and the same choice as .pipe method text. */
  sampling?: { config: SamplingConfig; method: string };
  stop?: string[];
  json: boolean;
  cacheDir?: string;
  resetWarmState: boolean;
}

/** The shared flags, checked; `command` names the command in usage errors. */
export function parseGenerationFlags(command: string, values: Values): GenerationFlags {
  if (values.prompt !== undefined && values.ids !== undefined) throw new UsageError(`pipec ${command} takes one of --prompt or --ids, not both`);
  const device = values.device as Device | undefined;
  if (device !== undefined && !DEVICES.includes(device)) throw new UsageError(`--device must be one of ${DEVICES.join(", ")}, got '${values.device}'`);
  return {
    prompt: values.prompt ?? (values.ids === undefined ? undefined : parseIds(values.ids)),
    maxTokens: parsePositiveInt("--max-tokens", values["max-tokens"]),
    device,
    threads: parsePositiveInt("--threads", values.threads),
    sampling: values.sampling === undefined ? undefined : parseSamplingFlag(values.sampling),
    stop: values.stop,
    json: values.json ?? false,
    cacheDir: values["cache-dir"],
    resetWarmState: values["reset-warm-state"] ?? false,
  };
}

/**
 * `--reset-warm-state`: the stderr line saying what the run discards (the driver deletes the file
 * as the pipeline opens, before its measurements), or that a pipeline without speculation keeps none.
 */
export function resetWarmStateLine(file: string, speculates: boolean): string {
  if (!speculates) return "pipec: --reset-warm-state: this pipeline does not speculate, so it keeps no warm state";
  return existsSync(file) ? `pipec: warm state reset: discarding ${file}; speculation measures and learns from nothing` : `pipec: warm state reset: there was none yet (${file}); speculation measures and learns from nothing`;
}

/** The prompt, which the command needs. */
export function promptOf(command: string, flags: GenerationFlags): string | number[] {
  if (flags.prompt === undefined) throw new UsageError(`pipec ${command} needs exactly one of --prompt or --ids`);
  return flags.prompt;
}

/**
 * `--sampling` as a .pipe method (`sample(temperature: 0.8)`) or in the runtime's older
 * `temperature=0.8,top_k=40` form; either way both the runtime's config and the method text.
 */
function parseSamplingFlag(text: string): { config: SamplingConfig; method: string } {
  if (text.includes("=")) {
    const config = parseSampling(text);
    return { config, method: samplingMethod(config) };
  }
  const use = parseMethodOption(text, "sampling").use;
  // Greedy is `{}` rather than absent, so that it overrides a pipeline's sampling.
  return { config: (use && runtimeSampling(use)) || {}, method: text };
}

function samplingMethod(config: SamplingConfig): string {
  if (!config.temperature) return "greedy";
  const params: [string, number | undefined][] = [["temperature", config.temperature], ["top_k", config.topK], ["top_p", config.topP], ["repetition_penalty", config.repetitionPenalty], ["seed", config.seed]];
  return `sample(${params.filter(([, v]) => v !== undefined).map(([k, v]) => `${k}: ${v}`).join(", ")})`;
}

let deviceNoticed = false;

/** Where the runtime's "no GPU, running on cpu" line goes: stderr, once per process. */
export function deviceNotice(io: CliIO): (line: string) => void {
  return (line) => {
    if (deviceNoticed) return;
    deviceNoticed = true;
    io.err(`${line}\n`);
  };
}

/** How events print: text (or ids, space-separated) as they come, then a stats line on stderr; or one JSON object at the end. */
export async function printGeneration(events: AsyncIterable<GenerationEvent>, output: { textual: boolean; json: boolean }, io: CliIO): Promise<void> {
  let first = true;
  for await (const event of events) {
    if (event.kind === "token") {
      if (output.json) continue;
      io.out(output.textual ? event.text : `${first ? "" : " "}${event.token}`);
      first = false;
    } else if (output.json) {
      io.out(`${JSON.stringify({ tokens: event.tokens, text: event.text, finishReason: event.finishReason, stats: event.stats }, null, 2)}\n`);
    } else {
      if (!output.textual || !event.text.endsWith("\n")) io.out("\n");
      io.err(`${formatStats(event.stats, event.finishReason)}\n`);
    }
  }
}

/** The one stats line of a generation. */
export function formatStats(s: GenerationStats, finishReason: string): string {
  const kib = (s.peakKvBytes / 1024).toFixed(1);
  const spec = s.speculative ? `, speculative ${s.speculative.source}: ${s.speculative.acceptedTokens}/${s.speculative.draftedTokens} drafts accepted` : "";
  const attended = Object.entries(s.attendedKeys ?? {}).map(([method, a]) => `, ${method} attended ${a.min === a.max ? a.min : `${a.min}..${a.max}`} keys a step`).join("");
  return `${s.promptTokens} prompt + ${s.generatedTokens} generated tokens on ${s.device}: prefill ${s.prefillMs.toFixed(1)} ms, first token ${s.timeToFirstTokenMs.toFixed(1)} ms, decode ${s.decodeTokensPerSecond.toFixed(1)} tok/s, session ${s.sessionRunMs.toFixed(1)} ms / host ${s.hostMs.toFixed(1)} ms, peak KV ${kib} KiB${attended}${spec}; stopped: ${finishReason}`;
}

/** Ctrl-C ends generation early (the output so far is kept) rather than killing the process. */
export async function withInterrupt<T>(run: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.once("SIGINT", onSigint);
  try {
    return await run(controller.signal);
  } finally {
    process.off("SIGINT", onSigint);
  }
}
