import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative, resolve, sep } from "node:path";
import type { Diagnostic } from "../../dsl/diagnostics.ts";
import { defaultRegistry } from "../../passes/index.ts";
import { loadModel, saveModel } from "../onnx/index.ts";
import { isPipecError, type PipecError } from "../errors.ts";
import { PACKAGE_ROOT, PIPEC_VERSION } from "../paths.ts";
import { runPipeline, type PassRecord } from "../pass-manager/manager.ts";
import type { PassRegistry } from "../pass-manager/registry.ts";
import { writeDirAtomically } from "./atomic-dir.ts";
import { generateDriver } from "./driver.ts";
import { copyVisionCompanions } from "./vision-files.ts";
import { dumpPipeline } from "./dump.ts";
import { analyzeFile, analyzeSource, type FrontendResult } from "./frontend.ts";
import { lossyRequests, type GraphPassStep, type PipelineIR } from "./ir.ts";
import { stableJson } from "./stable-json.ts";

export interface CompileOptions {
  outDir: string;
  registry?: PassRegistry;
  /**
   * How driver.ts imports the runtime. "relative" (default): a relative path to this repository's
   * runtime/index.ts, for outputs used next to the pipec checkout; anything else is used as the
   * module specifier (e.g. "pipec/runtime" in a project that depends on pipec).
   */
  runtimeImport?: "relative" | string;
}

export interface CompileResult {
  /** Absolute path of the .pipe file. */
  file: string;
  source: string;
  diagnostics: Diagnostic[];
  /** Set when the compile succeeded. */
  outDir?: string;
  ir?: PipelineIR;
}

const RUNTIME_INDEX = resolve(PACKAGE_ROOT, "runtime/index.ts");

/** Compiles a .pipe file into `outDir`; on any error `outDir` is left as it was. */
export async function compileFile(file: string, opts: CompileOptions): Promise<CompileResult> {
  return compileAnalyzed(analyzeFile(file, { registry: opts.registry }), opts);
}

/** Compiles .pipe source text; `file` says where it lives (paths in it are relative to its folder). */
export async function compileSource(source: string, file: string, opts: CompileOptions): Promise<CompileResult> {
  return compileAnalyzed(analyzeSource(source, file, { registry: opts.registry }), opts);
}

async function compileAnalyzed(front: FrontendResult, opts: CompileOptions): Promise<CompileResult> {
  const result: CompileResult = { file: front.file, source: front.source, diagnostics: front.diagnostics.sorted() };
  const ir = front.ir;
  if (!ir || front.diagnostics.hasErrors) return result;
  const outDir = resolve(opts.outDir);
  let unchanged: (GraphPassStep & { model: string })[];
  try {
    unchanged = await writeDirAtomically(outDir, (dir) => writeOutputs(ir, front, dir, outDir, opts));
  } catch (e) {
    if (!(e instanceof RequestedPassRefusal)) throw e;
    return { ...result, diagnostics: [...result.diagnostics, refusalError(ir, e)] };
  }
  return { ...result, diagnostics: [...result.diagnostics, ...unchanged.map((step) => idleRequestWarning(ir, step))], outDir, ir };
}

/** A pass a .pipe request added refused the model (e.g. a combination the model's encoding cannot honour). */
class RequestedPassRefusal extends Error {
  constructor(
    readonly step: GraphPassStep,
    readonly refusal: PipecError,
  ) {
    super(refusal.message);
  }
}

/** Where in the .pipe the request that added `origin`'s pass was written. */
function requestSpan(ir: PipelineIR, origin: string) {
  const [stageName, slot] = origin.split(/[.:]/);
  const stage = ir.stages.find((s) => s.name === stageName);
  return stage && [stage.kv, stage.attention, stage.speculate, stage.sampling].find((l) => l.use.slot === slot)?.use.span;
}

/** The refusal as an error at the request that asked for the pass, as the language's own checks report. */
function refusalError(ir: PipelineIR, e: RequestedPassRefusal): Diagnostic {
  const span = requestSpan(ir, e.step.origin);
  return { severity: "error", message: `${e.step.origin.slice(e.step.origin.indexOf(".") + 1)}: ${e.refusal.message.replace(/^pass '[^']*': /, "")}`, ...(span && { span }) };
}

/**
 * A requested method whose pass changed nothing (it found nothing it rewrites, e.g. attention an
 * earlier pass already replaced) is reported where it was requested: the output would silently
 * be the model without it.
 */
function idleRequestWarning(ir: PipelineIR, step: GraphPassStep & { model: string }): Diagnostic {
  const span = requestSpan(ir, step.origin);
  const message = `${step.origin.slice(step.origin.indexOf(".") + 1)}: pass '${step.pass}' changed nothing in model '${step.model}'; its output is the model without it`;
  return { severity: "warning", message, ...(span && { span }) };
}

/** Runs a model's passes; a pass's refusal names the request that added it. */
function runRequestedPasses(model: Parameters<typeof runPipeline>[0], passes: Parameters<typeof runPipeline>[1], steps: readonly GraphPassStep[]): PassRecord[] {
  try {
    return runPipeline(model, passes);
  } catch (e) {
    const step = isPipecError(e) && steps.find((p) => e.message.startsWith(`pass '${p.pass}': `));
    if (!step) throw e;
    throw new RequestedPassRefusal(step, e as PipecError);
  }
}

/** Writes every output into `dir`; returns the requested passes that changed nothing. */
function writeOutputs(ir: PipelineIR, front: FrontendResult, dir: string, finalDir: string, opts: CompileOptions): (GraphPassStep & { model: string })[] {
  const unchanged: (GraphPassStep & { model: string })[] = [];
  const registry = opts.registry ?? defaultRegistry();
  const pipeDir = dirname(front.file);
  const rel = (p: string) => relative(pipeDir, p).split(sep).join("/");
  const modelFiles: Record<string, string> = {};
  const tokenizerFiles: Record<string, string> = {};
  const passRuns: Record<string, unknown>[] = [];
  const inputs: Record<string, unknown>[] = [{ role: "pipeline", path: basename(front.file), sha256: sha256(front.source) }];
  for (const m of ir.models) {
    const target = `models/${m.name}/model.onnx`;
    const model = loadModel(m.path);
    const passes = registry.resolve(m.passes.map((p) => ({ name: p.pass, options: p.options })));
    const records: PassRecord[] = runRequestedPasses(model, passes, m.passes);
    records.forEach((r, i) => {
      const step = m.passes[i]!;
      passRuns.push({ model: m.name, pass: r.name, options: step.options, origin: step.origin, lossy: step.lossy, changed: r.changed, stats: r.stats });
      if (!r.changed && step.lossy) unchanged.push({ ...step, model: m.name });
    });
    mkdirSync(join(dir, "models", m.name), { recursive: true });
    saveModel(model, join(dir, target), { weights: "preserve" });
    // The runtime reads positions and EOS ids from the config beside the model.
    for (const config of ["config.json", "genai_config.json"]) {
      const from = join(dirname(m.path), config);
      if (existsSync(from)) copyFileSync(from, join(dir, "models", m.name, config));
    }
    copyVisionCompanions(m, join(dir, "models", m.name));
    modelFiles[m.name] = target;
    inputs.push({ role: "model", name: m.name, path: rel(m.path), sha256: sha256File(m.path) });
  }
  for (const t of ir.tokenizers) {
    if (t.kind !== "hf") continue;
    const target = `tokenizers/${t.name}/tokenizer.json`;
    mkdirSync(join(dir, "tokenizers", t.name), { recursive: true });
    copyFileSync(t.path, join(dir, target));
    const config = join(dirname(t.path), "tokenizer_config.json");
    if (existsSync(config)) copyFileSync(config, join(dir, "tokenizers", t.name, "tokenizer_config.json"));
    tokenizerFiles[t.name] = target;
    inputs.push({ role: "tokenizer", name: t.name, path: rel(t.path), sha256: sha256File(t.path) });
  }
  const runtimeImport = !opts.runtimeImport || opts.runtimeImport === "relative" ? relativeImport(finalDir, RUNTIME_INDEX) : opts.runtimeImport;
  const driver = generateDriver(ir, { runtimeImport, modelFiles, tokenizerFiles, sourceName: basename(front.file) });
  writeFileSync(join(dir, "driver.ts"), driver);
  // driver.ts is an ES module (it uses import.meta) wherever the folder is put.
  writeFileSync(join(dir, "package.json"), stableJson({ private: true, type: "module" }));
  const dump = dumpPipeline(ir, rel);
  writeFileSync(join(dir, "pipeline.ir"), dump);
  const manifest = {
    pipeline: ir.name,
    inputs,
    passes: passRuns,
    stages: ir.stages.map((s) => ({
      name: s.name,
      model: s.model,
      tokenizer: s.tokenizer,
      ...Object.fromEntries([s.kv, s.attention, s.speculate, s.sampling].map((l) => [l.use.slot, { method: l.use.method, params: l.use.params, lossy: l.use.lossy, level: l.level }])),
      maxTokens: s.maxTokens,
      stop: s.stop,
      device: s.device,
    })),
    ...(ir.encoders && { encoders: ir.encoders.map((e) => ({ name: e.name, model: e.model, prune: { method: e.prune.use.method, params: e.prune.use.params, lossy: e.prune.use.lossy, level: e.prune.level }, device: e.device })) }),
    lossy: lossyRequests(ir),
    outputs: { driver: "driver.ts", ir: "pipeline.ir", models: modelFiles, tokenizers: tokenizerFiles },
    versions: { pipec: PIPEC_VERSION, onnxruntimeNode: dependencyVersion("onnxruntime-node"), chevrotain: dependencyVersion("chevrotain"), tsMorph: dependencyVersion("ts-morph") },
  };
  writeFileSync(join(dir, "manifest.json"), stableJson(manifest));
  return unchanged;
}

function relativeImport(fromDir: string, file: string): string {
  const r = relative(fromDir, file).split(sep).join("/");
  return r.startsWith(".") ? r : `./${r}`;
}

function dependencyVersion(name: string): string {
  const pkg = JSON.parse(readFileSync(resolve(PACKAGE_ROOT, "package.json"), "utf8")) as { dependencies: Record<string, string> };
  return pkg.dependencies[name] ?? "unknown";
}

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

function sha256File(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}
