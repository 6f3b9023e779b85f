import { optimize, type OptimizeReport } from "../../api.ts";
import { externalFilesFlag, onePositional, parseCommandArgs, parseNonNegativeInt, UsageError } from "../args.ts";
import type { Command } from "../command.ts";
import { formatBytes, formatTable } from "../format.ts";
import { checkDestination } from "../../../graph/output-guard.ts";
import type { CliIO } from "../io.ts";

export const optCommand: Command = {
  name: "opt",
  summary: "run passes over a model and save the result",
  help: `usage: pipec opt <in.onnx> -o <out.onnx> [--passes PIPELINE] [options]

Loads the model, puts its nodes in topological order (a cycle is reported), runs the passes and
saves the result. Without --passes the model is loaded and saved unchanged. Nothing is written
when any step fails. The output may not be the input, lie inside it, or be a folder.

  -o, --output FILE             where to write the model (required)
  --passes PIPELINE             comma-separated passes, with options: 'dce,cse,name(key=value)'
                                (pipec passes lists them)
  --external-data LOCATION      write weights of at least --external-threshold bytes to this file,
                                relative to the output's folder (default: keep weights where they are)
  --external-threshold N        bytes (default 1024)
  --external-files MODE         how unchanged external data files reach an output in another folder:
                                clone (default: copy-on-write where the filesystem can, else a copy)
                                or copy; never a hard link. Beside the input they are shared
  --print-ir-after PASS         print the IR after PASS (repeatable, or comma-separated), to stderr
  --print-ir-after-all          print the IR after every pass
  --print-ir-after-change       print the IR after every pass that changed it
  --dump-dir DIR                write 00-input.txt, 01-<pass>.txt, ... there
  --verify-each                 verify the input and the model after every pass
  --timing                      print a table of passes: time, changed, statistics
  --json                        print the report as JSON instead: {output, bytes, sorted,
                                externalFiles, loadMs, saveMs, passes} (docs/cli.md)
`,
  run(args, io) {
    const { values, positionals } = parseCommandArgs("opt", args, {
      output: { type: "string", short: "o" },
      passes: { type: "string" },
      "external-data": { type: "string" },
      "external-threshold": { type: "string" },
      "external-files": { type: "string" },
      "print-ir-after": { type: "string", multiple: true },
      "print-ir-after-all": { type: "boolean" },
      "print-ir-after-change": { type: "boolean" },
      "dump-dir": { type: "string" },
      "verify-each": { type: "boolean" },
      timing: { type: "boolean" },
      json: { type: "boolean" },
    });
    if (values.help) {
      io.out(this.help);
      return 0;
    }
    const input = onePositional("opt", positionals, "an input model");
    if (!values.output) throw new UsageError("pipec opt needs -o <out.onnx> (see pipec opt --help)");
    const threshold = values["external-threshold"];
    if (threshold !== undefined && !values["external-data"]) throw new UsageError("--external-threshold needs --external-data");
    const location = values["external-data"];
    if (values["dump-dir"] !== undefined) checkDestination(values["dump-dir"], "folder");
    const report = optimize({
      input,
      output: values.output,
      passes: values.passes,
      externalData: location === undefined ? undefined : { location, ...(threshold !== undefined && { threshold: parseNonNegativeInt("--external-threshold", threshold) }) },
      externalFiles: externalFilesFlag(values["external-files"]),
      instrumentation: {
        printIrAfter: values["print-ir-after"]?.flatMap((p) => p.split(",")).map((p) => p.trim()),
        printIrAfterAll: values["print-ir-after-all"],
        printIrAfterChange: values["print-ir-after-change"],
        dumpDir: values["dump-dir"],
        verifyEach: values["verify-each"],
        emit: (text) => io.err(text),
      },
    });
    if (values.json) io.out(`${JSON.stringify(optReportJson(report), null, 2)}\n`);
    else printReport(report, values.timing ?? false, io);
    return 0;
  },
};

function printReport(r: OptimizeReport, timing: boolean, io: CliIO): void {
  io.out(`wrote ${r.save.path} (${formatBytes(r.save.modelBytes)})${r.sorted ? "; the input was not in topological order and was sorted" : ""}\n`);
  for (const f of r.save.externalFiles) io.out(`  external data ${f.location}: ${f.how} (${formatBytes(f.bytes)})\n`);
  if (!timing) return;
  const ms = (n: number) => n.toFixed(1);
  const rows = [
    ["load", ms(r.loadMs), "", ""],
    ...r.passes.map((p) => [p.name, ms(p.ms), p.changed ? "yes" : "no", Object.entries(p.stats).map(([k, v]) => `${k}=${v}`).join(" ")]),
    ["save", ms(r.saveMs), "", ""],
  ];
  io.out(formatTable(["pass", "ms", "changed", "stats"], rows));
}

/** The --json form of the report (documented in docs/cli.md). */
function optReportJson(r: OptimizeReport) {
  return {
    output: r.save.path,
    bytes: r.save.modelBytes,
    sorted: r.sorted,
    externalFiles: r.save.externalFiles.map((f) => ({ location: f.location, how: f.how, bytes: f.bytes })),
    loadMs: r.loadMs,
    saveMs: r.saveMs,
    passes: r.passes.map((p) => ({ name: p.name, ms: p.ms, changed: p.changed, stats: p.stats })),
  };
}
