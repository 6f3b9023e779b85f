import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isPipecError, PipecError } from "../errors.ts";
import type { Model } from "../ir/model.ts";
import { verifyModel, type Diagnostic } from "../ir/verifier.ts";
import type { Pass, PassContext, PassResult } from "./pass.ts";
import { formatPipeline } from "./pipeline.ts";
import { PROPERTY_CHECKS } from "./properties.ts";
import { didYouMean } from "./suggest.ts";
import type { PipelinePass } from "./registry.ts";

export interface Instrumentation {
  /** Print the IR after each pass with one of these names. */
  printIrAfter?: readonly string[];
  printIrAfterAll?: boolean;
  /** Print the IR after each pass that changed the model. */
  printIrAfterChange?: boolean;
  /** Write `00-input.txt`, `01-<pass>.txt`, ... here: the IR before the pipeline and after each pass. */
  dumpDir?: string;
  /** Run the verifier on the input and after every pass; the first pass that breaks the model is named. */
  verifyEach?: boolean;
  /** The IR's text form (needed by the printing and dump options). */
  print?: (model: Model) => string;
  /** Where printed IR and notes go. */
  emit?: (text: string) => void;
  /** Called when a pass crashes or breaks the model; returns a line saying where a reproducer was written. */
  onFailure?: (failure: { pass: string; index: number; pipeline: string }) => string | undefined;
}

/** What one pass did: for `--timing` and the compile report. */
export interface PassRecord {
  name: string;
  ms: number;
  changed: boolean;
  stats: Record<string, number>;
}

/**
 * A pass threw something other than a PipecError, or left a model the verifier rejects: a bug in
 * the pass, not in the user's input. The message names the pass and where the reproducer is.
 */
export class PassFailure extends Error {
  constructor(
    message: string,
    readonly pass: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "PassFailure";
  }
}

/**
 * Checks what can be checked before anything runs: every property a pass requires must either be
 * guaranteed by an earlier pass (or hold initially), or be one the manager can test on the model.
 */
export function checkPipeline(passes: readonly PipelinePass[], initial: Iterable<string> = []): void {
  const holds = new Set(initial);
  for (const { pass } of passes) {
    for (const p of pass.requires ?? []) {
      if (!holds.has(p) && !PROPERTY_CHECKS[p]) {
        throw new PipecError("pipeline", `pass '${pass.name}' requires '${p}', which no earlier pass guarantees`);
      }
    }
    // Assume every pass changes the model: only what it preserves or guarantees is sure to hold.
    for (const p of [...holds]) if (!pass.preserves?.includes(p)) holds.delete(p);
    for (const p of pass.guarantees ?? []) holds.add(p);
  }
}

/**
 * Runs `passes` over `model` in order. Properties a pass requires that no earlier pass guaranteed
 * are tested on the model first; a pass that throws a PipecError propagates it named after the
 * pass; any other failure becomes a PassFailure (after `onFailure` has written a reproducer).
 */
export function runPipeline(model: Model, passes: readonly PipelinePass[], instr: Instrumentation = {}, initial: Iterable<string> = []): PassRecord[] {
  checkPipeline(passes, initial);
  for (const name of instr.printIrAfter ?? []) {
    const names = passes.map((p) => p.pass.name);
    if (!names.includes(name)) throw new PipecError("pipeline", `--print-ir-after names '${name}', which is not in the pipeline${didYouMean(name, names)}`);
  }
  const holds = new Set(initial);
  const pipeline = formatPipeline(passes.map((p) => p.step));
  const observer = new IrObserver(instr, passes.length);
  const records: PassRecord[] = [];
  observer.input(model);

  passes.forEach(({ pass, options }, index) => {
    for (const p of pass.requires ?? []) {
      if (holds.has(p)) continue;
      if (!PROPERTY_CHECKS[p]!(model)) {
        throw new PipecError("pipeline", `pass '${pass.name}' requires '${p}', which does not hold here (no earlier pass guarantees it)`);
      }
      holds.add(p);
    }
    const fail = (message: string, cause?: unknown): never => {
      const where = instr.onFailure?.({ pass: pass.name, index, pipeline });
      throw new PassFailure(`${message}${where ? `; ${where}` : ""}`, pass.name, { cause });
    };
    const ctx: PassContext = { options, note: (m) => instr.emit?.(`note: ${pass.name}: ${m}\n`) };
    const start = performance.now();
    const result = runGuarded(pass, model, ctx, fail);
    records.push({ name: pass.name, ms: performance.now() - start, changed: result.changed, stats: result.stats ?? {} });

    if (result.changed) for (const p of [...holds]) if (!pass.preserves?.includes(p)) holds.delete(p);
    for (const p of pass.guarantees ?? []) holds.add(p);
    if (instr.verifyEach) {
      const problems = verifyModel(model);
      if (problems.length) fail(`pass '${pass.name}' produced an invalid model: ${summarize(problems)}`);
    }
    observer.after(model, pass.name, index, result.changed);
  });
  return records;
}

/** Runs one pass: a PipecError it throws is the user's problem and keeps its message; anything else is a crash. */
function runGuarded(pass: Pass, model: Model, ctx: PassContext, fail: (message: string, cause: unknown) => never): PassResult {
  try {
    return pass.run(model, ctx);
  } catch (e) {
    if (isPipecError(e)) throw new PipecError(e.code, `pass '${pass.name}': ${e.message}`, e.location);
    return fail(`pass '${pass.name}' crashed: ${e instanceof Error ? e.message : String(e)}`, e);
  }
}

function summarize(problems: Diagnostic[]): string {
  return problems.length === 1 ? problems[0]!.message : `${problems[0]!.message} (and ${problems.length - 1} more)`;
}

/** The printing side of instrumentation: --print-ir-after*, --dump-dir, and the input check of --verify-each. */
class IrObserver {
  private readonly width: number;

  constructor(
    private readonly instr: Instrumentation,
    passCount: number,
  ) {
    this.width = Math.max(2, String(passCount).length);
    const printing = instr.printIrAfterAll || instr.printIrAfterChange || instr.printIrAfter?.length || instr.dumpDir;
    if (printing && !instr.print) throw new Error("IR printing was asked for without a printer");
    if (instr.dumpDir) mkdirSync(instr.dumpDir, { recursive: true });
  }

  input(model: Model): void {
    if (this.instr.verifyEach) {
      const problems = verifyModel(model);
      if (problems.length) throw new PipecError("invalid-model", `the input model is invalid: ${summarize(problems)}`);
    }
    this.dump(model, "input", 0);
  }

  after(model: Model, pass: string, index: number, changed: boolean): void {
    const { printIrAfterAll, printIrAfterChange, printIrAfter } = this.instr;
    if (printIrAfterAll || (printIrAfterChange && changed) || printIrAfter?.includes(pass)) {
      this.instr.emit?.(`// ----- IR after ${pass} (#${index + 1}${changed ? "" : ", unchanged"}) -----\n${this.instr.print!(model)}\n`);
    }
    this.dump(model, pass, index + 1);
  }

  private dump(model: Model, label: string, n: number): void {
    if (!this.instr.dumpDir) return;
    writeFileSync(join(this.instr.dumpDir, `${String(n).padStart(this.width, "0")}-${label}.txt`), this.instr.print!(model));
  }
}
