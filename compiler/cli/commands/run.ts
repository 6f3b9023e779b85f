import { formatDiagnostics } from "../../../dsl/diagnostics.ts";
import { isRuntimeError } from "../../../runtime/index.ts";
import { PipecError } from "../../../graph/errors.ts";
import { prepareRun, runCompiled, warmStateFile } from "../../pipeline/run.ts";
import { onePositional, parseCommandArgs, UsageError } from "../args.ts";
import { checkDestination } from "../../../graph/output-guard.ts";
import { deviceNotice, GENERATION_OPTIONS, generationHelp, parseGenerationFlags, printGeneration, promptOf, resetWarmStateLine, withInterrupt } from "../generation-flags.ts";
import type { CliIO } from "../io.ts";

/** `pipec run`: compile into the cache when stale, then run the compiled driver. */
export const runCommand = {
  name: "run",
  summary: "compile a .pipe file (cached) and run it on a prompt",
  help: `usage: pipec run <file.pipe> (--prompt TEXT | --ids 1,2,3) [--image FILE] [options]

Compiles the pipeline into a cache folder when it is stale (the .pipe or a file it reads changed),
then runs the compiled driver.ts, streaming the generated text to stdout (ids when the pipeline's
tokenizer is raw ids), then one line of stats on stderr. Flags override the pipeline's settings.

  --image FILE        the image (PNG or JPEG) for a pipeline with an encode stage
${generationHelp({ maxTokens: "default: the pipeline's max_tokens", device: "default: the pipeline's", sampling: "default: the pipeline's", cacheDir: "default: PIPEC_CACHE_DIR, else $XDG_CACHE_HOME/pipec, else ~/.cache/pipec; see pipec cache" })}`,
  async run(args: string[], io: CliIO): Promise<number> {
    const { values, positionals } = parseCommandArgs("run", args, { ...GENERATION_OPTIONS, image: { type: "string" } });
    if (values.help) {
      io.out(this.help);
      return 0;
    }
    const file = onePositional("run", positionals, "a .pipe file");
    const gen = parseGenerationFlags("run", values);
    const prompt = promptOf("run", gen);
    if (gen.cacheDir !== undefined) checkDestination(gen.cacheDir, "folder");

    const prepared = await prepareRun(file, { cacheDir: gen.cacheDir });
    const { diagnostics, source } = prepared.compile;
    if (diagnostics.length) io.err(formatDiagnostics(diagnostics, file, source) + "\n");
    if (!prepared.outDir) return 1;
    const ir = prepared.compile.ir!;
    const stage = ir.stages[0]!;
    const needsImage = ir.encoders?.some((e) => e.name === stage.input) ?? false;
    if (needsImage && values.image === undefined) throw new UsageError(`pipeline '${ir.name}' answers about an image: give it with --image FILE`);
    if (!needsImage && values.image !== undefined) throw new UsageError(`pipeline '${ir.name}' has no encode stage to take --image`);
    const textual = ir.tokenizers.find((t) => t.name === stage.tokenizer)?.kind === "hf";
    if (typeof prompt === "string" && !textual) throw new UsageError(`the pipeline's tokenizer '${stage.tokenizer}' is raw ids: give the prompt with --ids`);
    if (gen.stop && !textual) throw new UsageError(`--stop needs a tokenizer, and the pipeline's tokenizer '${stage.tokenizer}' is raw ids`);
    if (gen.resetWarmState) io.err(`${resetWarmStateLine(warmStateFile(prepared.outDir), stage.speculate.level !== "none")}\n`);
    try {
      const { device, threads, maxTokens, stop, resetWarmState } = gen;
      const image = values.image;
      const run = (signal: AbortSignal) => runCompiled(prepared.outDir, prompt, { device, threads, maxTokens, stop, sampling: gen.sampling?.config, signal, onNotice: deviceNotice(io), resetWarmState, ...(image !== undefined && { image }) });
      await withInterrupt((signal) => printGeneration(run(signal), { textual, json: gen.json }, io));
    } catch (e) {
      if (isRuntimeError(e)) throw new PipecError(e.code, e.message);
      throw e;
    }
    return 0;
  },
};
