import { importLlama2c } from "../../../graph/importers/llama2c.ts";
import { ENCODINGS, parameterCount, type AttentionEncoding } from "../../../graph/zoo/index.ts";
import { UsageError, parseCommandArgs } from "../args.ts";
import type { Command } from "../command.ts";
import { checkDestination } from "../../../graph/output-guard.ts";

const FORMATS = ["llama2c"];

export const importCommand: Command = {
  name: "import",
  summary: "convert a foreign checkpoint (llama2.c) into an Optimum-layout ONNX model",
  help: `usage: pipec import llama2c <file.bin> -o <dir> [--encoding decomposed|ms|standard]

Converts a llama2.c v0 checkpoint into <dir>/model.onnx, with the Optimum decoder inputs and
outputs (input_ids, attention_mask, position_ids, past_key_values.* -> logits, present.*),
and <dir>/config.json with the architecture facts (layers, heads, kv heads, head dim, hidden,
vocab, max positions, rope theta, bos/eos ids).

  -o, --output <dir>   the folder to write (created if needed)
  --encoding <e>       how attention is spelled: decomposed (as Optimum exports it, default),
                       ms (com.microsoft GroupQueryAttention), standard (ONNX Attention-23)
  --json               print {model, family, layers, hidden, heads, kvHeads, vocab, parameters}
`,
  run(args, io) {
    const { values, positionals } = parseCommandArgs("import", args, {
      output: { type: "string", short: "o" },
      encoding: { type: "string" },
      json: { type: "boolean" },
    });
    if (values.help) {
      io.out(this.help);
      return 0;
    }
    const [format, file, ...extra] = positionals;
    if (format === undefined || !FORMATS.includes(format)) {
      throw new UsageError(`pipec import needs a format, one of: ${FORMATS.join(", ")}${format ? ` (got '${format}')` : ""} (see pipec import --help)`);
    }
    if (file === undefined) throw new UsageError(`pipec import ${format} needs a checkpoint file (see pipec import --help)`);
    if (extra.length > 0) throw new UsageError(`pipec import ${format} takes one checkpoint file, got also: ${extra.join(" ")}`);
    if (values.output === undefined) throw new UsageError(`pipec import ${format} needs -o <dir>`);
    checkDestination(values.output, "folder");
    const result = importLlama2c(file, values.output, { encoding: parseEncoding(values.encoding) });
    const c = result.config;
    if (values.json) {
      const report = { model: result.modelPath, family: "llama", layers: c.layers, hidden: c.hidden, heads: c.heads, kvHeads: c.kvHeads, vocab: c.vocabSize, parameters: parameterCount(c) };
      io.out(`${JSON.stringify(report, null, 2)}\n`);
      return 0;
    }
    io.out(
      `${result.modelPath}: llama, ${c.layers} layers, hidden ${c.hidden}, ${c.heads} heads / ${c.kvHeads} kv heads, vocab ${c.vocabSize}, ${parameterCount(c)} parameters\n`,
    );
    return 0;
  },
};

/** The --encoding value, checked. */
export function parseEncoding(text: string | undefined): AttentionEncoding {
  if (text === undefined) return "decomposed";
  if (!(ENCODINGS as readonly string[]).includes(text)) throw new UsageError(`--encoding must be one of ${ENCODINGS.join(", ")}, got '${text}'`);
  return text as AttentionEncoding;
}
