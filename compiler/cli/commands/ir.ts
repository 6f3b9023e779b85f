import { modelText } from "../../api.ts";
import type { WeightsMode } from "../../../graph/ir/text/printer.ts";
import { onePositional, parseCommandArgs, UsageError } from "../args.ts";
import type { Command } from "../command.ts";
import { pipelineIrCommand } from "./pipeline-ir.ts";

const WEIGHT_MODES: readonly WeightsMode[] = ["shape-only", "hash", "values"];

export const irCommand: Command = {
  name: "ir",
  summary: "print a model in ONNX's textual syntax, or a .pipe file's pipeline IR",
  help: `usage: pipec ir <model.onnx> [--weights shape-only|hash|values]

Prints the model in the onnx.printer text syntax.
For a .pipe file: pipec ir <file.pipe> [--after PASS] [--print-ir-after-all] [--dump-dir DIR]
prints the pipeline IR (see pipec ir file.pipe --help).

  --weights MODE   how tensors with more than 16 elements print: shape-only (default, reads no
                   weights), hash (a content hash) or values (every value)
`,
  run(args, io) {
    if (args.some((a) => a.endsWith(".pipe"))) return pipelineIrCommand(args, io);
    const { values, positionals } = parseCommandArgs("ir", args, { weights: { type: "string" } });
    if (values.help) {
      io.out(this.help);
      return 0;
    }
    const weights = values.weights ?? "shape-only";
    if (!WEIGHT_MODES.includes(weights as WeightsMode)) throw new UsageError(`--weights must be one of ${WEIGHT_MODES.join(", ")}, got '${weights}'`);
    const text = modelText(onePositional("ir", positionals, "a model file"), { weights: weights as WeightsMode });
    io.out(text.endsWith("\n") ? text : `${text}\n`);
    return 0;
  },
};
