import { writeFileSync } from "node:fs";
import { formatDiagnostics } from "../../../dsl/diagnostics.ts";
import { formatPipe } from "../../../dsl/format.ts";
import { parsePipe } from "../../../dsl/parse.ts";
import { readPipeText } from "../../../graph/file-kind.ts";
import { parseCommandArgs, UsageError } from "../args.ts";
import type { Command } from "../command.ts";

export const fmtCommand: Command = {
  name: "fmt",
  summary: "format .pipe files canonically",
  help: `usage: pipec fmt <file.pipe>... [--write | --check]

Prints the canonical formatting of each file (two-space indents, one setting per line, comments
kept). --write rewrites the files in place; --check prints the names of files that are not
formatted and exits 1 if there are any. A file with syntax errors is reported and left alone.
`,
  run(args, io) {
    const { values, positionals } = parseCommandArgs("fmt", args, { write: { type: "boolean" }, check: { type: "boolean" } });
    if (values.help) {
      io.out(this.help);
      return 0;
    }
    if (positionals.length === 0) throw new UsageError("pipec fmt needs a .pipe file (see pipec fmt --help)");
    if (values.write && values.check) throw new UsageError("pipec fmt: --write and --check exclude each other");
    let status = 0;
    for (const file of positionals) {
      const source = readPipeText(file);
      const parsed = parsePipe(source);
      if (parsed.diagnostics.hasErrors) {
        io.err(formatDiagnostics(parsed.diagnostics.sorted(), file, source) + "\n");
        status = 1;
        continue;
      }
      const formatted = formatPipe(parsed.ast, source);
      if (values.check) {
        if (formatted !== source) {
          io.out(`${file}\n`);
          status = 1;
        }
      } else if (values.write) {
        if (formatted !== source) writeFileSync(file, formatted);
      } else io.out(formatted);
    }
    return status;
  },
};
