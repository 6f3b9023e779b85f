import { existsSync } from "node:fs";
import { parseMethodOption } from "../../../dsl/option.ts";
import { Generator, isRuntimeError, loadTokenizer, parseSampling, DecoderModel, type Device, type GenerationEvent, type GenerationStats, type SamplingConfig } from "../../../runtime/index.ts";
import { PipecError } from "../../errors.ts";
import { checkMethodFlags, formatFlagDiagnostics, pipelineFromFlags, prepareFlagsRun, type GenerateFlags } from "../../pipeline/from-flags.ts";
import { runtimeSampling } from "../../pipeline/runtime-options.ts";
import { loadCompiled } from "../../pipeline/run.ts";
import { onePositional, parseCommandArgs, parseIds, parsePositiveInt, UsageError } from "../args.ts";
import type { Command } from "../command.ts";
import type { CliIO } from "../io.ts";

const DEVICES: readonly Device[] = ["auto", "cpu", "cuda", "webgpu"];

const HELP = `usage: pipec generate <model.onnx> (--prompt TEXT | --ids 1,2,3) [options]

Runs a decoder model with pipec's runtime and prints the continuation as it is generated
(text with a tokenizer, ids without), then one line of stats on stderr.

  --tokenizer FILE    a Hugging Face tokenizer.json (needed for --prompt and --stop)
  --prompt TEXT       the prompt as text
  --ids LIST          the prompt as comma-separated token ids
  --max-tokens N      most tokens to generate (default 128)
  --device D          auto (default: a GPU if one loads, else cpu), cpu, cuda or webgpu
  --threads N         onnxruntime intra-op threads
  --sampling S        greedy (default), a .pipe method (sample(temperature: 0.8, top_k: 40, seed: 1)),
                      or temperature=0.8,top_k=40,top_p=0.9,repetition_penalty=1.1,seed=1
  --stop STR          stop before this text (repeatable)
  --json              print {tokens, text, finishReason, stats} instead; tokens are the generated ids

Optimisations, written as in a .pipe stage (see docs/language.md), e.g. --kv 'streaming(window: 60)':
  --kv M              KV-cache policy: full, streaming(sinks, window)
  --attention M       sparse attention: dense, tidal(...), tokenselect(...)
  --speculate M       speculative decoding: lookup(ngram, max_draft), self(skip: [..]), recycle(...),
                      draft(model: draft, k) with --draft-model
  --draft-model FILE  a draft model, named 'draft' for --speculate 'draft(model: draft)'
  --print-pipe        print the equivalent .pipe and exit (no prompt needed)
  --cache-dir DIR     where compiled pipelines are kept (default: PIPEC_CACHE_DIR, else
                      $XDG_CACHE_HOME/pipec, else ~/.cache/pipec; see pipec cache)

Any optimisation compiles the equivalent one-stage .pipe (cached, as pipec run does) and runs it;
without one the model runs directly.
`;

export const generateCommand: Command = {
  name: "generate",
  summary: "generate text or token ids from a decoder model with the runtime",
  help: HELP,
  async run(args, io) {
    try {
      return await generate(args, io);
    } catch (e) {
      // The runtime's errors (a tokenizer that does not fit the model, bad sampling) are the user's.
      if (isRuntimeError(e)) throw new PipecError(e.code, e.message);
      throw e;
    }
  },
};

async function generate(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseCommandArgs("generate", args, {
    tokenizer: { type: "string" },
    prompt: { type: "string" },
    ids: { type: "string" },
    "max-tokens": { type: "string" },
    device: { type: "string" },
    threads: { type: "string" },
    sampling: { type: "string" },
    stop: { type: "string", multiple: true },
    json: { type: "boolean" },
    kv: { type: "string" },
    attention: { type: "string" },
    speculate: { type: "string" },
    "draft-model": { type: "string" },
    "print-pipe": { type: "boolean" },
    "cache-dir": { type: "string" },
  });
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const modelPath = onePositional("generate", positionals, "a model file");
  const device = values.device as Device | undefined;
  if (device !== undefined && !DEVICES.includes(device)) throw new UsageError(`--device must be one of ${DEVICES.join(", ")}, got '${values.device}'`);
  if (values.stop && !values.tokenizer) throw new UsageError("--stop needs --tokenizer");
  const sampling = values.sampling === undefined ? undefined : samplingFlag(values.sampling);
  const flags: GenerateFlags = {
    model: modelPath,
    tokenizer: values.tokenizer,
    draftModel: values["draft-model"],
    methods: { kv: values.kv, attention: values.attention, speculate: values.speculate, sampling: sampling?.method },
    maxTokens: parsePositiveInt("--max-tokens", values["max-tokens"]),
    stop: values.stop,
    device,
  };
  if (!existsSync(modelPath)) throw new PipecError("model-not-found", `${modelPath}: no such file`);
  const badFlags = checkMethodFlags(flags.methods);
  if (badFlags) {
    io.err(`${badFlags}\n`);
    return 1;
  }
  if (values["print-pipe"]) {
    io.out(pipelineFromFlags(flags).source);
    return 0;
  }

  if ((values.prompt === undefined) === (values.ids === undefined)) throw new UsageError("pipec generate needs exactly one of --prompt or --ids");
  if (values.prompt !== undefined && !values.tokenizer) throw new UsageError("--prompt needs --tokenizer (or give --ids)");
  const prompt = values.prompt ?? parseIds(values.ids!);
  const output: Output = { textual: values.tokenizer !== undefined, json: values.json ?? false };
  const threads = parsePositiveInt("--threads", values.threads);
  const optimised = values.kv !== undefined || values.attention !== undefined || values.speculate !== undefined || values["draft-model"] !== undefined;
  if (optimised) return generateCompiled(flags, prompt, { threads, cacheDir: values["cache-dir"] }, output, io);
  return generateDirect(flags, prompt, { threads, sampling: sampling?.config }, output, io);
}

/** How the events are printed: text or ids as they come, or one JSON object at the end. */
interface Output {
  textual: boolean;
  json: boolean;
}

/** No optimisation asked for: the model runs as it is, with nothing to compile. */
async function generateDirect(flags: GenerateFlags, prompt: string | number[], opts: { threads?: number; sampling?: SamplingConfig }, output: Output, io: CliIO): Promise<number> {
  const tokenizer = flags.tokenizer ? loadTokenizer(flags.tokenizer) : undefined;
  const model = await DecoderModel.open(flags.model, { device: flags.device ?? "auto", threads: opts.threads, onNotice: (line) => io.err(`${line}\n`) });
  try {
    const generator = new Generator(model, tokenizer);
    await withInterrupt((signal) => printEvents(generator.stream(prompt, { maxTokens: flags.maxTokens ?? 128, sampling: opts.sampling, stopStrings: flags.stop ?? [], signal }), output, io));
    return 0;
  } finally {
    await model.release();
  }
}

/** Optimisations asked for: the flags' pipeline is compiled (or found in the cache) and its driver runs. */
async function generateCompiled(flags: GenerateFlags, prompt: string | number[], opts: { threads?: number; cacheDir?: string }, output: Output, io: CliIO): Promise<number> {
  const { pipeline, file, prepared } = await prepareFlagsRun(flags, opts.cacheDir);
  const { diagnostics } = prepared.compile;
  if (diagnostics.length) io.err(`${formatFlagDiagnostics(diagnostics, pipeline, file)}\n`);
  if (!prepared.outDir) return 1;
  const compiled = await loadCompiled(prepared.outDir, { device: flags.device, threads: opts.threads });
  try {
    await withInterrupt((signal) => printEvents(compiled.generate(prompt, { signal }), output, io));
    return 0;
  } finally {
    await compiled.close();
  }
}

/** Ctrl-C ends generation early (the output so far is kept) rather than killing the process. */
async function withInterrupt<T>(run: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.once("SIGINT", onSigint);
  try {
    return await run(controller.signal);
  } finally {
    process.off("SIGINT", onSigint);
  }
}

async function printEvents(events: AsyncIterable<GenerationEvent>, output: Output, io: CliIO): Promise<void> {
  let first = true;
  for await (const event of events) {
    if (event.kind === "token") {
      if (output.json) continue;
      io.out(output.textual ? event.text : `${first ? "" : ","}${event.token}`);
      first = false;
    } else if (output.json) {
      io.out(`${JSON.stringify({ tokens: event.tokens, text: event.text, finishReason: event.finishReason, stats: event.stats }, null, 2)}\n`);
    } else {
      io.out("\n");
      io.err(`${formatStats(event.stats)}, stopped: ${event.finishReason}\n`);
    }
  }
}

/**
 * `--sampling` as a .pipe method (`sample(temperature: 0.8)`) or in the runtime's older
 * `temperature=0.8,top_k=40` form; either way both the runtime's config and the method text.
 */
function samplingFlag(text: string): { config: SamplingConfig | undefined; method: string } {
  if (text.includes("=")) {
    const config = parseSampling(text);
    return { config, method: samplingMethod(config) };
  }
  const use = parseMethodOption(text, "sampling").use;
  return { config: use && runtimeSampling(use), method: text };
}

function samplingMethod(config: SamplingConfig): string {
  if (!config.temperature) return "greedy";
  const params: [string, number | undefined][] = [["temperature", config.temperature], ["top_k", config.topK], ["top_p", config.topP], ["repetition_penalty", config.repetitionPenalty], ["seed", config.seed]];
  return `sample(${params.filter(([, v]) => v !== undefined).map(([k, v]) => `${k}: ${v}`).join(", ")})`;
}

function formatStats(s: GenerationStats): string {
  const kib = (s.peakKvBytes / 1024).toFixed(1);
  const attended = Object.entries(s.attendedKeys ?? {}).map(([method, a]) => `, ${method} attended ${a.min === a.max ? a.min : `${a.min}..${a.max}`} keys a step`).join("");
  return `${s.promptTokens} prompt + ${s.generatedTokens} generated tokens on ${s.device}: prefill ${s.prefillMs.toFixed(1)} ms, first token ${s.timeToFirstTokenMs.toFixed(1)} ms, decode ${s.decodeTokensPerSecond.toFixed(1)} tok/s, session ${s.sessionRunMs.toFixed(1)} ms / host ${s.hostMs.toFixed(1)} ms, peak KV ${kib} KiB${attended}`;
}

