import { formatDiagnostics } from "../../../dsl/diagnostics.ts";
import { compileFile } from "../../pipeline/compile.ts";
import { externalFilesFlag, onePositional, parseCommandArgs, UsageError } from "../args.ts";
import type { CliIO } from "../io.ts";
import { diagnosticsJson } from "../report.ts";

/** `pipec compile`: async, since it awaits the atomic output folder. */
export const compileCommand = {
  name: "compile",
  summary: "compile a .pipe file into optimised models, driver.ts, pipeline.ir and manifest.json",
  help: `usage: pipec compile <file.pipe> -o <outdir> [--force] [--external-files MODE] [--runtime-import SPEC] [--json]

Writes into <outdir>: models/<name>/model.onnx (rewritten; weights kept or copied as they are),
tokenizers/<name>/tokenizer.json, driver.ts (exports createPipeline()), pipeline.ir (the pipeline
with everything explicit) and manifest.json (input hashes, passes and their statistics, lossy
rewrites, versions). The same input gives the same bytes. On any error <outdir> is left untouched.

  -o, --out DIR           the output folder, replaced as a whole on success. It may not be, hold or
                          lie inside a file the pipeline reads, nor be a file; an existing folder
                          is replaced only when a previous compile wrote it (or with --force)
  --force                 replace <outdir> even when it is a folder pipec did not write
  --external-files MODE   how the models' unchanged external data files are provided: clone
                          (default: a copy-on-write clone where the filesystem has them, else a
                          copy) or copy; never a hard link
  --runtime-import SPEC   how driver.ts imports the runtime: "relative" (default, a path to this
                          checkout's runtime/index.ts) or a module name such as pipec/runtime
  --json                  print {file, ok, outDir, diagnostics: [{severity, message, line, column}]}
`,
  async run(args: string[], io: CliIO): Promise<number> {
    const { values, positionals } = parseCommandArgs("compile", args, {
      out: { type: "string", short: "o" },
      "runtime-import": { type: "string" },
      force: { type: "boolean" },
      "external-files": { type: "string" },
      json: { type: "boolean" },
    });
    if (values.help) {
      io.out(this.help);
      return 0;
    }
    const file = onePositional("compile", positionals, "a .pipe file");
    if (!values.out) throw new UsageError("pipec compile needs -o <outdir>");
    const result = await compileFile(file, {
      outDir: values.out,
      runtimeImport: values["runtime-import"],
      force: values.force,
      externalFiles: externalFilesFlag(values["external-files"]),
    });
    if (values.json) {
      io.out(`${JSON.stringify({ file, ok: result.outDir !== undefined, outDir: result.outDir ?? null, diagnostics: diagnosticsJson(result.diagnostics) }, null, 2)}\n`);
      return result.outDir ? 0 : 1;
    }
    if (result.diagnostics.length) io.err(formatDiagnostics(result.diagnostics, file, result.source) + "\n");
    if (!result.outDir) {
      io.err(`${file}: not compiled; ${values.out} is unchanged\n`);
      return 1;
    }
    io.out(`${file}: compiled into ${values.out}\n`);
    return 0;
  },
};
