import { formatDiagnostics } from "../../../dsl/diagnostics.ts";
import { isRuntimeError, type GenerationStats } from "../../../runtime/index.ts";
import { PipecError } from "../../errors.ts";
import { prepareRun, runCompiled } from "../../pipeline/run.ts";
import { onePositional, parseCommandArgs, parseIds, parsePositiveInt, UsageError } from "../args.ts";
import type { CliIO } from "../io.ts";

const DEVICES = ["auto", "cpu", "cuda", "webgpu"] as const;

/** `pipec run`: compile into the cache when stale, then run the compiled driver. */
export const runCommand = {
  name: "run",
  summary: "compile a .pipe file (cached) and run it on a prompt",
  help: `usage: pipec run <file.pipe> (--prompt TEXT | --ids 1,2,3) [--image FILE] [--json] [options]

Compiles the pipeline into a cache folder when it is stale (the .pipe or a file it reads changed),
then runs the compiled driver.ts, streaming the generated text to stdout (ids when the pipeline's
tokenizer is raw ids).

  --prompt TEXT      the prompt (needs a tokenizer in the pipeline)
  --ids LIST         the prompt as comma-separated token ids
  --image FILE       the image (PNG or JPEG) for a pipeline with an encode stage
  --json             print {tokens, text, stats} at the end instead of streaming
  --max-tokens N     override the pipeline's max_tokens
  --device D         override the pipeline's device (auto, cpu, cuda, webgpu)
  --cache-dir DIR    where compiled pipelines are kept (default: .pipec-cache beside the file)
`,
  async run(args: string[], io: CliIO): Promise<number> {
    const { values, positionals } = parseCommandArgs("run", args, {
      prompt: { type: "string" },
      ids: { type: "string" },
      image: { type: "string" },
      json: { type: "boolean" },
      "max-tokens": { type: "string" },
      device: { type: "string" },
      "cache-dir": { type: "string" },
    });
    if (values.help) {
      io.out(this.help);
      return 0;
    }
    const file = onePositional("run", positionals, "a .pipe file");
    if ((values.prompt === undefined) === (values.ids === undefined)) throw new UsageError("pipec run needs exactly one of --prompt or --ids");
    const device = values.device as (typeof DEVICES)[number] | undefined;
    if (device !== undefined && !DEVICES.includes(device)) throw new UsageError(`--device must be one of ${DEVICES.join(", ")}, got '${device}'`);
    const maxTokens = parsePositiveInt("--max-tokens", values["max-tokens"]);
    const prompt = values.prompt ?? parseIds(values.ids!);

    const prepared = await prepareRun(file, { cacheDir: values["cache-dir"] });
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
    try {
      for await (const event of runCompiled(prepared.outDir, prompt, { device, maxTokens, ...(values.image !== undefined && { image: values.image }) })) {
        if (event.kind === "token" && !values.json) io.out(textual ? event.text : `${event.token} `);
        if (event.kind === "end") {
          if (values.json) io.out(JSON.stringify({ tokens: event.tokens, text: event.text, stats: event.stats }) + "\n");
          else {
            if (!textual || !event.text.endsWith("\n")) io.out("\n");
            io.err(statsLine(event.stats, event.finishReason) + "\n");
          }
        }
      }
    } catch (e) {
      if (isRuntimeError(e)) throw new PipecError(e.code, e.message);
      throw e;
    }
    return 0;
  },
};

function statsLine(stats: GenerationStats, finish: string): string {
  return `[${finish}] ${Object.entries(stats)
    .map(([k, v]) => `${k}=${typeof v === "number" && !Number.isInteger(v) ? v.toFixed(1) : String(v)}`)
    .join(" ")}`;
}

