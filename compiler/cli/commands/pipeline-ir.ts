import { formatDiagnostics } from "../../../dsl/diagnostics.ts";
import { showPipelineIr } from "../../pipeline/show.ts";
import { onePositional, parseCommandArgs } from "../args.ts";
import type { CliIO } from "../io.ts";

const HELP = `usage: pipec ir <file.pipe> [--after PASS] [--print-ir-after-all] [--dump-dir DIR]

Prints the pipeline IR: the .pipe with every default filled in, paths resolved, the models' facts
(layers, KV heads, KV input/output names) and the passes planned on each model.

  --after PASS            also print each model's graph after PASS runs
  --print-ir-after-all    also print each model's graph after every pass
  --dump-dir DIR          write DIR/<model>/00-input.txt, 01-<pass>.txt, ... for each model
`;

/** `pipec ir` on a .pipe file (dispatched from the ir command). */
export function pipelineIrCommand(args: string[], io: CliIO): number {
  const { values, positionals } = parseCommandArgs("ir", args, { after: { type: "string" }, "print-ir-after-all": { type: "boolean" }, "dump-dir": { type: "string" } });
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const file = onePositional("ir", positionals, "a .pipe file");
  const result = showPipelineIr(file, { after: values.after, printIrAfterAll: values["print-ir-after-all"], dumpDir: values["dump-dir"] });
  if (result.diagnostics.length) io.err(formatDiagnostics(result.diagnostics, file, result.source) + "\n");
  if (result.text === undefined) return 1;
  io.out(result.text);
  return 0;
}
