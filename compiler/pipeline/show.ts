import type { Diagnostic } from "../../dsl/diagnostics.ts";
import { printModel } from "../../graph/ir/text/printer.ts";
import { loadModel } from "../../graph/onnx/index.ts";
import { runPipeline } from "../../graph/pass-manager/manager.ts";
import { dumpPipeline } from "./dump.ts";
import { analyzeFile } from "./frontend.ts";

export interface ShowOptions {
  /** Print each model's graph after the pass with this name. */
  after?: string;
  printIrAfterAll?: boolean;
  /** Write each model's graph before and after every pass here (one subfolder per model). */
  dumpDir?: string;
}

export interface ShowResult {
  source: string;
  diagnostics: Diagnostic[];
  /** The pipeline IR, then any graph IR asked for; undefined when the file has errors. */
  text?: string;
}

/** `pipec ir file.pipe`: the pipeline-level IR, and the model graphs around the passes it plans. */
export function showPipelineIr(file: string, opts: ShowOptions = {}): ShowResult {
  // Placed, so the IR says what compile would do: an optional request the model cannot take shows as not applied.
  const front = analyzeFile(file, { place: true });
  const result: ShowResult = { source: front.source, diagnostics: front.diagnostics.sorted() };
  if (!front.ir) return result;
  const parts = [dumpPipeline(front.ir)];
  if (opts.after !== undefined || opts.printIrAfterAll || opts.dumpDir !== undefined) {
    for (const m of front.ir.models) {
      const model = loadModel(m.path);
      const passes = m.passes.map((step) => step.make());
      parts.push(`# model ${m.name} (${m.path}): ${passes.length ? passes.map((p) => p.pass.name).join(", ") : "no graph passes planned"}\n`);
      runPipeline(model, passes, {
        printIrAfter: opts.after !== undefined ? [opts.after] : undefined,
        printIrAfterAll: opts.printIrAfterAll,
        dumpDir: opts.dumpDir !== undefined ? `${opts.dumpDir}/${m.name}` : undefined,
        print: (mm) => printModel(mm),
        emit: (text) => parts.push(text),
      });
    }
  }
  return { ...result, text: parts.join("\n") };
}
