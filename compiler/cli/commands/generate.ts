import { existsSync } from "node:fs";
import { PipecError } from "../../errors.ts";
import { Generator, isRuntimeError, loadTokenizer, parseSampling, DecoderModel, type Device, type GenerationStats, type TextTokenizer } from "../../../runtime/index.ts";
import { onePositional, parseCommandArgs, UsageError } from "../args.ts";
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
  --sampling S        greedy (default) or temperature=0.8,top_k=40,top_p=0.9,repetition_penalty=1.1,seed=1
  --stop STR          stop before this text (repeatable)
  --json              print {tokens, text, finishReason, stats} instead; tokens are the generated ids
`;

export const generateCommand: Command = {
  name: "generate",
  summary: "generate text or token ids from a decoder model with the runtime",
  help: HELP,
  async run(args, io) {
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
    });
    if (values.help) {
      io.out(HELP);
      return 0;
    }
    const modelPath = onePositional("generate", positionals, "a model file");
    if ((values.prompt === undefined) === (values.ids === undefined)) throw new UsageError("pipec generate needs exactly one of --prompt or --ids");
    if (values.prompt !== undefined && !values.tokenizer) throw new UsageError("--prompt needs --tokenizer (or give --ids)");
    const device = (values.device ?? "auto") as Device;
    if (!DEVICES.includes(device)) throw new UsageError(`--device must be one of ${DEVICES.join(", ")}, got '${values.device}'`);
    if (!existsSync(modelPath)) throw new PipecError("model-not-found", `${modelPath}: no such file`);

    try {
      const tokenizer = values.tokenizer ? loadTokenizer(values.tokenizer) : undefined;
      const prompt = values.prompt ?? parseIds(values.ids!);
      const model = await DecoderModel.open(modelPath, { device, threads: optionalInt("--threads", values.threads), onNotice: (line) => io.err(`${line}\n`) });
      try {
        return await generate(model, tokenizer, prompt, {
          maxTokens: optionalInt("--max-tokens", values["max-tokens"]) ?? 128,
          sampling: values.sampling ? parseSampling(values.sampling) : undefined,
          stopStrings: values.stop ?? [],
          json: values.json ?? false,
        }, io);
      } finally {
        await model.release();
      }
    } catch (e) {
      if (isRuntimeError(e)) throw new PipecError(e.code, e.message);
      throw e;
    }
  },
};

interface RunSettings {
  maxTokens: number;
  sampling: ReturnType<typeof parseSampling> | undefined;
  stopStrings: string[];
  json: boolean;
}

async function generate(model: DecoderModel, tokenizer: TextTokenizer | undefined, prompt: string | number[], settings: RunSettings, io: CliIO): Promise<number> {
  const generator = new Generator(model, tokenizer);
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.once("SIGINT", onSigint);
  try {
    let first = true;
    for await (const event of generator.stream(prompt, { maxTokens: settings.maxTokens, sampling: settings.sampling, stopStrings: settings.stopStrings, signal: controller.signal })) {
      if (event.kind === "token") {
        if (settings.json) continue;
        io.out(tokenizer ? event.text : `${first ? "" : ","}${event.token}`);
        first = false;
      } else if (settings.json) {
        io.out(`${JSON.stringify({ tokens: event.tokens, text: event.text, finishReason: event.finishReason, stats: event.stats }, null, 2)}\n`);
      } else {
        io.out("\n");
        io.err(`${formatStats(event.stats)}, stopped: ${event.finishReason}\n`);
      }
    }
    return 0;
  } finally {
    process.off("SIGINT", onSigint);
  }
}

function formatStats(s: GenerationStats): string {
  const kib = (s.peakKvBytes / 1024).toFixed(1);
  return `${s.promptTokens} prompt + ${s.generatedTokens} generated tokens on ${s.device}: prefill ${s.prefillMs.toFixed(1)} ms, first token ${s.timeToFirstTokenMs.toFixed(1)} ms, decode ${s.decodeTokensPerSecond.toFixed(1)} tok/s, session ${s.sessionRunMs.toFixed(1)} ms / host ${s.hostMs.toFixed(1)} ms, peak KV ${kib} KiB`;
}

function parseIds(text: string): number[] {
  const parts = text.split(",").map((p) => p.trim());
  if (parts.some((p) => !/^\d+$/.test(p))) throw new UsageError(`--ids needs comma-separated token ids, got '${text}'`);
  return parts.map(Number);
}

function optionalInt(option: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^[1-9]\d*$/.test(text)) throw new UsageError(`${option} needs a positive whole number, got '${text}'`);
  return Number(text);
}
