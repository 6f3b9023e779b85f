import { existsSync } from "node:fs";
import { dirname } from "node:path";
import { Generator, isRuntimeError, loadTokenizer, DecoderModel } from "../../../runtime/index.ts";
import { PipecError } from "../../../graph/errors.ts";
import { loadModel } from "../../../graph/onnx/index.ts";
import { checkMethodFlags, formatFlagDiagnostics, pipelineFromFlags, prepareFlagsRun, type GenerateFlags } from "../../pipeline/from-flags.ts";
import { readModelFacts } from "../../pipeline/model-facts.ts";
import { loadCompiled, warmStateFile } from "../../pipeline/run.ts";
import { onePositional, parseCommandArgs, UsageError } from "../args.ts";
import type { Command } from "../command.ts";
import { checkDestination } from "../../../graph/output-guard.ts";
import { deviceNotice, GENERATION_OPTIONS, generationHelp, parseGenerationFlags, printGeneration, promptOf, resetWarmStateLine, withInterrupt, type GenerationFlags } from "../generation-flags.ts";
import type { CliIO } from "../io.ts";

const HELP = `usage: pipec generate <model.onnx> (--prompt TEXT | --ids 1,2,3) [options]

Runs a decoder model with pipec's runtime and prints the continuation as it is generated
(text with a tokenizer, ids without), then one line of stats on stderr.

  --tokenizer FILE    a Hugging Face tokenizer.json (needed for --prompt and --stop)
${generationHelp({ maxTokens: "default 128", device: "default auto", sampling: "default greedy", cacheDir: "default: PIPEC_CACHE_DIR, else $XDG_CACHE_HOME/pipec, else ~/.cache/pipec; see pipec cache" })}
Optimisations, written as in a .pipe stage (see docs/language.md), e.g. --kv 'streaming(window: 60)':
  --kv M              KV-cache policy: full, streaming(sinks, window)
  --attention M       sparse attention: dense, tidal(...), tokenselect(...)
  --speculate M       speculative decoding: lookup(ngram, max_draft), self(skip: [..]), recycle(...),
                      dyspec(nodes); draft(model: draft, k), dyspec(source: draft, nodes) or
                      spectr(model: draft, drafts, draft_length) with --draft-model
  --draft-model FILE  a draft model, named 'draft' for --speculate 'draft(model: draft)'
  --print-pipe        print the equivalent .pipe and exit (no prompt needed)

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
    ...GENERATION_OPTIONS,
    tokenizer: { type: "string" },
    kv: { type: "string" },
    attention: { type: "string" },
    speculate: { type: "string" },
    "draft-model": { type: "string" },
    "print-pipe": { type: "boolean" },
  });
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const modelPath = onePositional("generate", positionals, "a model file");
  if (values.stop && !values.tokenizer) throw new UsageError("--stop needs --tokenizer");
  const gen = parseGenerationFlags("generate", values);
  const flags: GenerateFlags = {
    model: modelPath,
    tokenizer: values.tokenizer,
    draftModel: values["draft-model"],
    methods: { kv: values.kv, attention: values.attention, speculate: values.speculate, sampling: gen.sampling?.method },
    maxTokens: gen.maxTokens,
    stop: gen.stop,
    device: gen.device,
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
  const prompt = promptOf("generate", gen);
  if (typeof prompt === "string" && !values.tokenizer) throw new UsageError("--prompt needs --tokenizer (or give --ids)");
  if (gen.cacheDir !== undefined) checkDestination(gen.cacheDir, "folder");
  const output = { textual: values.tokenizer !== undefined, json: gen.json };
  const optimised = values.kv !== undefined || values.attention !== undefined || values.speculate !== undefined || values["draft-model"] !== undefined;
  if (optimised) return generateCompiled(flags, gen, prompt, gen.cacheDir, output, io);
  if (gen.resetWarmState) io.err(`${resetWarmStateLine("", false)}\n`);
  return generateDirect(flags, gen, prompt, output, io);
}

/** No optimisation asked for: the model runs as it is, with nothing to compile. */
async function generateDirect(flags: GenerateFlags, gen: GenerationFlags, prompt: string | number[], output: { textual: boolean; json: boolean }, io: CliIO): Promise<number> {
  const tokenizer = flags.tokenizer ? loadTokenizer(flags.tokenizer) : undefined;
  // The compiler reads the file first: a file that is no model gets its one-line reason before
  // onnxruntime sees it, and the position limit comes from the graph where no config.json says it.
  const { maxPositions } = readModelFacts(loadModel(flags.model), dirname(flags.model));
  const model = await DecoderModel.open(flags.model, { device: flags.device ?? "auto", threads: gen.threads, maxPositions, onNotice: deviceNotice(io) });
  try {
    const generator = new Generator(model, tokenizer);
    await withInterrupt((signal) => printGeneration(generator.stream(prompt, { maxTokens: flags.maxTokens ?? 128, sampling: gen.sampling?.config, stopStrings: flags.stop ?? [], signal }), output, io));
    return 0;
  } finally {
    await model.release();
  }
}

/** Optimisations asked for: the flags' pipeline is compiled (or found in the cache) and its driver runs. */
async function generateCompiled(flags: GenerateFlags, gen: GenerationFlags, prompt: string | number[], cacheDir: string | undefined, output: { textual: boolean; json: boolean }, io: CliIO): Promise<number> {
  const { pipeline, file, prepared } = await prepareFlagsRun(flags, cacheDir);
  const { diagnostics } = prepared.compile;
  if (diagnostics.length) io.err(`${formatFlagDiagnostics(diagnostics, pipeline, file)}\n`);
  if (!prepared.outDir) return 1;
  if (gen.resetWarmState) io.err(`${resetWarmStateLine(warmStateFile(prepared.outDir), prepared.compile.ir!.stages[0]!.speculate.level !== "none")}\n`);
  const compiled = await loadCompiled(prepared.outDir, { device: flags.device, threads: gen.threads, onNotice: deviceNotice(io), resetWarmState: gen.resetWarmState });
  try {
    await withInterrupt((signal) => printGeneration(compiled.generate(prompt, { signal }), output, io));
    return 0;
  } finally {
    await compiled.close();
  }
}
