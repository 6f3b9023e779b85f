import { gpt2Config, llamaConfig, parameterCount, writeZooModel, type ZooConfig } from "../../../graph/zoo/index.ts";
import { UsageError, onePositional, parseCommandArgs, parseNonNegativeInt } from "../args.ts";
import type { Command } from "../command.ts";
import { checkDestination } from "../../../graph/output-guard.ts";
import { parseEncoding } from "./import.ts";

const SIZE_OPTIONS = ["layers", "hidden", "heads", "kv-heads", "intermediate", "vocab", "max-positions", "seed"] as const;

export const zooCommand: Command = {
  name: "zoo",
  summary: "build a decoder with seeded random weights (llama, qwen2, gpt2) for tests and benchmarks",
  help: `usage: pipec zoo <llama|qwen2|gpt2> -o <dir> [options]

Writes <dir>/model.onnx (Optimum decoder inputs and outputs) and <dir>/config.json. The same
options and seed always give the same bytes.

  -o, --output <dir>       the folder to write
  --encoding <e>           decomposed (default), ms (com.microsoft fused), standard (Attention-23)
  --rotary <layout>        llama/qwen2: half (HF, default) or interleaved (llama2.c, GPT-J)
  --tied                   llama: the classifier reuses the token embedding (qwen2: always)
  --external-data          weights in model.onnx.data (default above 256 MiB)
  --layers N  --hidden N  --heads N  --kv-heads N  --intermediate N  --vocab N
  --max-positions N  --seed N
  --json                   print {model, family, layers, hidden, parameters}
`,
  run(args, io) {
    const { values, positionals } = parseCommandArgs("zoo", args, {
      output: { type: "string", short: "o" },
      encoding: { type: "string" },
      rotary: { type: "string" },
      tied: { type: "boolean" },
      "external-data": { type: "boolean" },
      json: { type: "boolean" },
      ...Object.fromEntries(SIZE_OPTIONS.map((o) => [o, { type: "string" as const }])),
    });
    if (values.help) {
      io.out(this.help);
      return 0;
    }
    const family = onePositional("zoo", positionals, "a family (llama, qwen2 or gpt2)");
    if (values.output === undefined) throw new UsageError("pipec zoo needs -o <dir>");
    const sizes: Record<string, number> = {};
    for (const option of SIZE_OPTIONS) {
      const text = (values as Record<string, unknown>)[option] as string | undefined;
      if (text === undefined) continue;
      sizes[option.replace(/-(\w)/g, (_, ch: string) => ch.toUpperCase())] = parseNonNegativeInt(`--${option}`, text);
    }
    const { vocab, ...rest } = sizes;
    const overrides = { ...rest, ...(vocab !== undefined ? { vocabSize: vocab } : {}) };
    checkDestination(values.output, "folder");
    const config = configFor(family, overrides, values.rotary, values.tied ?? false);
    const { modelPath } = writeZooModel(config, values.output, { encoding: parseEncoding(values.encoding), externalData: values["external-data"] });
    const report = { model: modelPath, family, layers: config.layers, hidden: config.hidden, parameters: parameterCount(config) };
    io.out(values.json ? `${JSON.stringify(report, null, 2)}\n` : `${modelPath}: ${family}, ${config.layers} layers, hidden ${config.hidden}, ${report.parameters} parameters\n`);
    return 0;
  },
};

function configFor(family: string, overrides: Record<string, number>, rotary: string | undefined, tied: boolean): ZooConfig {
  if (rotary !== undefined && rotary !== "half" && rotary !== "interleaved") throw new UsageError(`--rotary must be half or interleaved, got '${rotary}'`);
  const layout = rotary === undefined ? {} : { rotary: rotary as "half" | "interleaved" };
  switch (family) {
    case "llama":
      return llamaConfig({ ...overrides, ...layout, tiedEmbeddings: tied });
    case "qwen2":
      return llamaConfig({ ...overrides, ...layout, qkvBias: true, tiedEmbeddings: true });
    case "gpt2":
      if (rotary !== undefined) throw new UsageError("--rotary applies to llama and qwen2; gpt2 has learned positions");
      return gpt2Config(overrides);
    default:
      throw new UsageError(`unknown zoo family '${family}': one of llama, qwen2, gpt2`);
  }
}
