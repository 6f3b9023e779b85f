import { resolve } from "node:path";
import { checkPipe, type CheckedPipeline } from "../../dsl/check.ts";
import { Diagnostics } from "../../dsl/diagnostics.ts";
import type { FactsProvider } from "../../dsl/facts.ts";
import { parsePipe } from "../../dsl/parse.ts";
import { METHOD_TABLE } from "../methods/index.ts";
import { defaultRegistry } from "../methods/registry.ts";
import { readPipeText } from "../../graph/file-kind.ts";
import type { PassRegistry } from "../../graph/pass-manager/registry.ts";
import type { PipelineIR } from "./ir.ts";
import { lowerPipeline } from "./lower.ts";
import { ModelFiles } from "./model-facts.ts";
import { placeRequests, type Placement } from "./place.ts";

export interface FrontendOptions {
  registry?: PassRegistry;
  facts?: FactsProvider;
  /** Where the models are read (facts, unless `facts` is given, and placement): share one to read each file once across analyses. */
  models?: ModelFiles;
  /** Stop after the checks (no lowering): what `pipec check` needs when methods are not implemented yet. */
  lower?: boolean;
  /**
   * Also run the models' passes (nothing is written) and report requests a model cannot take,
   * as compile does: what `pipec check` and compile need. Off, the models are only read for facts.
   */
  place?: boolean;
}

export interface FrontendResult {
  /** Absolute path of the .pipe (paths in it are relative to its folder). */
  file: string;
  source: string;
  diagnostics: Diagnostics;
  checked?: CheckedPipeline;
  /** As placed when `place` was asked for (unplaceable optional requests dropped). */
  ir?: PipelineIR;
  /** The models after their passes, when `place` was asked for and nothing failed. */
  placement?: Placement;
}

/** Parse, check against the models, lower: every problem of the file is collected, none thrown. */
export function analyzeSource(source: string, file: string, opts: FrontendOptions = {}): FrontendResult {
  const abs = resolve(file);
  const parsed = parsePipe(source);
  const diagnostics = parsed.diagnostics;
  const models = opts.models ?? new ModelFiles();
  const checked = checkPipe(parsed.ast, { file: abs, methods: METHOD_TABLE, facts: opts.facts ?? models.provider }, diagnostics);
  dropCascades(diagnostics);
  const result: FrontendResult = { file: abs, source, diagnostics, checked };
  if (checked && !diagnostics.hasErrors && opts.lower !== false) {
    const ir = lowerPipeline(checked, opts.registry ?? defaultRegistry(), diagnostics);
    if (ir) result.ir = ir;
    if (ir && opts.place) placeAnalyzed(result, { ...opts, models });
  }
  return result;
}

/**
 * Runs the models' passes on an analysed (lowered, error-free) pipeline, as `place: true` does:
 * for a caller that must look at the lowered pipeline before the passes run (compile checks its
 * destination first). Adds the placement, or its errors, to `front`.
 */
export function placeAnalyzed(front: FrontendResult, opts: Pick<FrontendOptions, "registry" | "models"> = {}): void {
  if (!front.ir || front.placement || front.diagnostics.hasErrors) return;
  const models = opts.models ?? new ModelFiles();
  const placement = placeRequests(front.ir, opts.registry ?? defaultRegistry(), (path) => models.take(path));
  front.diagnostics.items.push(...placement.diagnostics);
  if (front.diagnostics.hasErrors) delete front.ir;
  else Object.assign(front, { ir: placement.ir, placement });
}

/**
 * Error recovery can turn the rest of a broken line into odd values (`sinks 4` becomes a positional
 * `sinks`); checks of such values only repeat the syntax error, so errors on its line are dropped.
 */
function dropCascades(diagnostics: Diagnostics): void {
  const syntaxLines = new Set(diagnostics.items.filter((d) => d.syntax).map((d) => d.span?.line));
  const kept = diagnostics.items.filter((d) => d.syntax || !syntaxLines.has(d.span?.line));
  diagnostics.items.splice(0, diagnostics.items.length, ...kept);
}

export function analyzeFile(file: string, opts: FrontendOptions = {}): FrontendResult {
  return analyzeSource(readPipeText(file), file, opts);
}
