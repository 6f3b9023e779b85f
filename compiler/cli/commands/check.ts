import { formatDiagnostics } from "../../../dsl/diagnostics.ts";
import { analyzeFile } from "../../pipeline/frontend.ts";
import { onePositional, parseCommandArgs } from "../args.ts";
import type { Command } from "../command.ts";

export const checkCommand: Command = {
  name: "check",
  summary: "check a .pipe file against its models and report every problem",
  help: `usage: pipec check <file.pipe>

Parses the file, checks every name, method and parameter against the language and the models it
names (layer ranges, vocabularies, files), runs the models' passes without writing anything (so a
request a model cannot take is reported as compile would), and reports every error and warning as
file:line:col with the source line. Exit code 0 when clean, 1 on errors, 2 on usage errors.
`,
  run(args, io) {
    const { values, positionals } = parseCommandArgs("check", args, {});
    if (values.help) {
      io.out(this.help);
      return 0;
    }
    const file = onePositional("check", positionals, "a .pipe file");
    const result = analyzeFile(file, { place: true });
    const items = result.diagnostics.sorted();
    if (items.length) io.err(formatDiagnostics(items, file, result.source) + "\n");
    const errors = items.filter((d) => d.severity === "error").length;
    if (errors) {
      io.err(`${file}: ${errors} error${errors > 1 ? "s" : ""}\n`);
      return 1;
    }
    io.out(`${file}: ok\n`);
    return 0;
  },
};
