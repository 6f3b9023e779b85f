/**
 * The programmatic API: what the `pipec` commands do, as functions. The CLI only parses
 * arguments and formats what these return.
 */
import { mkdirSync, statSync, writeFileSync } from "node:fs";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import { PipecError } from "../graph/errors.ts";
import { dtypeName } from "../graph/ir/dtype.ts";
import type { Graph } from "../graph/ir/graph.ts";
import { printModel, type PrintOptions } from "../graph/ir/text/printer.ts";
import { toposortModel } from "../graph/ir/toposort.ts";
import type { Value } from "../graph/ir/value.ts";
import { loadModel } from "../graph/onnx/load.ts";
import { saveModel, type ExternalDataOptions, type ExternalFileMode, type SaveReport } from "../graph/onnx/save.ts";
import { checkDestination, checkOutputFile, refuseOverlap } from "../graph/output-guard.ts";
import { runPipeline, type Instrumentation, type PassRecord } from "../graph/pass-manager/manager.ts";
import { parsePipeline } from "../graph/pass-manager/pipeline.ts";
import { TOPOLOGICALLY_SORTED } from "../graph/pass-manager/properties.ts";
import type { PassRegistry } from "../graph/pass-manager/registry.ts";
import { defaultRegistry } from "./methods/registry.ts";
import type { CompileOptions, CompileResult } from "./pipeline/compile.ts";
import type { GenerateFlags } from "./pipeline/from-flags.ts";
import type { CompiledPipeline, PreparedRun, RunOptions } from "./pipeline/run.ts";

// ---- inspect ------------------------------------------------------------------------------

/** A graph input or output. `null` stands for what the model leaves unknown. */
export interface ValueSummary {
  name: string;
  dtype: string | null;
  /** Known sizes as numbers, symbolic ones as names, unknown ones as null; null when even the rank is unknown. */
  shape: (number | string | null)[] | null;
}

/** What `pipec inspect --json` prints; docs/cli.md documents every field. */
export interface ModelSummary {
  path: string;
  irVersion: number;
  producer: { name: string; version: string };
  opsets: { domain: string; version: number }[];
  inputs: ValueSummary[];
  outputs: ValueSummary[];
  /** Nodes of the main graph, and of every subgraph nested in it. */
  nodeCount: number;
  subgraphNodeCount: number;
  /** Operator histogram over the main graph and its subgraphs, most frequent first; `domain::op` outside ai.onnx. */
  ops: Record<string, number>;
  initializers: { count: number; bytes: number; inlineBytes: number; externalBytes: number };
  externalFiles: { location: string; bytes: number; tensors: number }[];
  functions: number;
}

export function inspectModel(path: string): ModelSummary {
  const model = loadModel(path);
  const g = model.graph;
  const ops = new Map<string, number>();
  let subgraphNodeCount = 0;
  for (const n of g.allNodes()) {
    ops.set(n.qualifiedOp, (ops.get(n.qualifiedOp) ?? 0) + 1);
    if (n.graph !== g) subgraphNodeCount++;
  }
  const initializers = { count: 0, bytes: 0, inlineBytes: 0, externalBytes: 0 };
  const external = new Map<string, { location: string; bytes: number; tensors: number }>();
  for (const graph of graphsOf(g)) {
    for (const v of graph.initializers.values()) {
      const t = v.initializer!;
      initializers.count++;
      initializers.bytes += t.byteLength;
      if (!t.external) {
        initializers.inlineBytes += t.byteLength;
        continue;
      }
      initializers.externalBytes += t.byteLength;
      const { location, resolvedPath } = t.external;
      const file = external.get(location) ?? { location, bytes: statSync(resolvedPath).size, tensors: 0 };
      file.tensors++;
      external.set(location, file);
    }
  }
  return {
    path,
    irVersion: model.irVersion,
    producer: { name: model.extras.producerName, version: model.extras.producerVersion },
    opsets: [...model.opsets].map(([domain, version]) => ({ domain, version })),
    inputs: g.inputs.filter((v) => !v.isInitializer).map(summarizeValue),
    outputs: g.outputs.map(summarizeValue),
    nodeCount: g.nodeCount,
    subgraphNodeCount,
    ops: Object.fromEntries([...ops].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))),
    initializers,
    externalFiles: [...external.values()],
    functions: model.functions.length,
  };
}

function summarizeValue(v: Value): ValueSummary {
  const t = v.type;
  if (t?.kind !== "tensor") return { name: v.name, dtype: null, shape: null };
  return { name: v.name, dtype: dtypeName(t.dtype), shape: t.shape ? t.shape.map((d) => d ?? null) : null };
}

function* graphsOf(g: Graph): IterableIterator<Graph> {
  yield g;
  for (const n of g.nodes()) for (const sub of n.subgraphs()) yield* graphsOf(sub);
}

// ---- ir -----------------------------------------------------------------------------------

/** The model in ONNX's textual syntax. */
export function modelText(path: string, opts: PrintOptions = {}): string {
  return printModel(loadModel(path), opts);
}

// ---- opt ----------------------------------------------------------------------------------

export interface OptimizeOptions {
  input: string;
  output: string;
  /** A textual pipeline: `dce,cse`. Empty: load and save only. */
  passes?: string;
  /** Move weights of at least `threshold` bytes to new external data files. Default: keep weights where they are. */
  externalData?: ExternalDataOptions;
  /** How unchanged external data files reach an output in another folder: `clone` (default; a copy where the filesystem has no clones) or `copy`. */
  externalFiles?: ExternalFileMode;
  instrumentation?: Omit<Instrumentation, "print" | "onFailure">;
  registry?: PassRegistry;
}

export interface OptimizeReport {
  /** True when the input was out of topological order and had to be sorted. */
  sorted: boolean;
  passes: PassRecord[];
  save: SaveReport;
  /** Milliseconds spent loading and saving. */
  loadMs: number;
  saveMs: number;
}

/**
 * Loads `input`, puts it in topological order (a cycle is an error naming its nodes), runs the
 * pipeline and saves the result to `output`. The pipeline is checked before the model is read,
 * and nothing is written unless every step succeeded. A pass that crashes leaves a reproducer
 * (the input model and the pipeline) next to the output, or in the dump folder.
 */
export function optimize(opts: OptimizeOptions): OptimizeReport {
  const registry = opts.registry ?? defaultRegistry();
  const passes = registry.resolve(parsePipeline(opts.passes ?? ""));
  refuseOverlap(opts.output, opts.output, [{ path: opts.input, role: "input" }]);
  checkOutputFile(opts.output, opts.output);
  checkDestination(opts.output, "file");
  if (opts.externalData?.location !== undefined) refuseEscapingLocation(opts.externalData.location);

  let start = performance.now();
  const model = fileSystem(`cannot read '${opts.input}'`, () => loadModel(opts.input));
  const sorted = withFileContext(opts.input, () => toposortModel(model));
  const loadMs = performance.now() - start;

  const dumpDir = opts.instrumentation?.dumpDir;
  if (dumpDir) fileSystem(`cannot create the dump folder '${dumpDir}'`, () => mkdirSync(dumpDir, { recursive: true }));
  const instrumentation: Instrumentation = {
    ...opts.instrumentation,
    print: (m) => printModel(m),
    onFailure: ({ pipeline }) => writeReproducer(opts, pipeline),
  };
  const records = runPipeline(model, passes, instrumentation, [TOPOLOGICALLY_SORTED]);

  start = performance.now();
  const save = fileSystem(`cannot write '${opts.output}'`, () => saveModel(model, opts.output, { weights: opts.externalData ?? "preserve", externalFiles: opts.externalFiles }));
  return { sorted, passes: records, save, loadMs, saveMs: performance.now() - start };
}

/** External data must stay beside the model: `../x` or an absolute path would write elsewhere. */
function refuseEscapingLocation(location: string): void {
  const rel = relative(".", resolve(location));
  if (location === "" || isAbsolute(location) || rel.startsWith("..")) {
    throw new PipecError("external-data", `external data location '${location}' must be a relative path inside the output's folder`);
  }
}

/** Turns an operating system error (permissions, a full disk, a missing folder) into a PipecError saying what failed. */
function fileSystem<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (e instanceof Error && typeof code === "string" && /^E[A-Z]+$/.test(code)) throw new PipecError("io", `${what}: ${e.message}`);
    throw e;
  }
}

/** Prefixes a PipecError with the file it concerns. */
function withFileContext<T>(path: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof PipecError) throw new PipecError(e.code, `${path}: ${e.message}`, e.location);
    throw e;
  }
}

/** Saves the pipeline's input and its text beside the output; returns the line naming them. */
function writeReproducer(opts: OptimizeOptions, pipeline: string): string {
  const base = opts.instrumentation?.dumpDir ? join(opts.instrumentation.dumpDir, "reproducer") : `${resolve(opts.output)}.reproducer`;
  try {
    saveModel(loadModel(opts.input), `${base}.onnx`);
    writeFileSync(`${base}.pipeline`, `${pipeline}\n`);
    return `reproducer: pipec opt ${base}.onnx -o ${join(dirname(base), "out.onnx")} --passes '${pipeline}'`;
  } catch (e) {
    return `no reproducer (${(e as Error).message})`;
  }
}

// ---- pipelines (.pipe) --------------------------------------------------------------------
// Loaded only when called: compiling pulls in the .pipe parser (Chevrotain) and running
// onnxruntime, which inspect, ir and opt should not pay for.

export type { CompileOptions, CompileResult, CompiledPipeline, GenerateFlags, PreparedRun, RunOptions };

/** A .pipe file, or .pipe source text with the path it stands for (its paths are relative to that path's folder). */
export type PipelineInput = string | { source: string; file: string };

/** `pipec compile`: compiles a pipeline into `options.outDir`; the result's diagnostics say what is wrong when `outDir` is unset. */
export async function compilePipeline(input: PipelineInput, options: CompileOptions): Promise<CompileResult> {
  const { compileFile, compileSource } = await import("./pipeline/compile.ts");
  return typeof input === "string" ? compileFile(input, options) : compileSource(input.source, input.file, options);
}

/** Loads a folder written by compilePipeline: `generate(prompt)` streams its events. */
export async function loadPipeline(outDir: string, options: { device?: RunOptions["device"]; threads?: number } = {}): Promise<CompiledPipeline> {
  return (await import("./pipeline/run.ts")).loadCompiled(outDir, options);
}

/** `pipec run`'s first half: compiles a .pipe file into its cache unless the cached output is fresh. */
export async function preparePipelineRun(file: string, options: RunOptions = {}): Promise<PreparedRun> {
  return (await import("./pipeline/run.ts")).prepareRun(file, options);
}

/** `pipec generate --kv ... --print-pipe`: the one-stage .pipe equivalent to generate's options. */
export async function pipelineSourceFromFlags(flags: GenerateFlags): Promise<string> {
  return (await import("./pipeline/from-flags.ts")).pipelineFromFlags(flags).source;
}
