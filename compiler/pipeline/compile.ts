import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative, resolve, sep } from "node:path";
import type { Diagnostic } from "../../dsl/diagnostics.ts";
import { saveModel, type ExternalFileMode } from "../../graph/onnx/index.ts";
import { checkDestination, checkOutputFolder, refuseOverlap, writeOutputMarker } from "../../graph/output-guard.ts";
import { signalCheckpoint } from "../../graph/temp-outputs.ts";
import { PACKAGE_ROOT, PIPEC_VERSION } from "../paths.ts";
import type { PassRegistry } from "../../graph/pass-manager/registry.ts";
import { writeDirAtomically } from "./atomic-dir.ts";
import { generateDriver } from "./driver.ts";
import { copyVisionCompanions } from "./vision-files.ts";
import { dumpPipeline } from "./dump.ts";
import { analyzeFile, analyzeSource, placeAnalyzed, type FrontendResult } from "./frontend.ts";
import { lossyRequests, type PipelineIR } from "./ir.ts";
import { ModelFiles } from "./model-facts.ts";
import type { Placement } from "./place.ts";
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
  /** Replace `outDir` even when it is a folder pipec did not write (it is never an input, nor holds one). */
  force?: boolean;
  /** How unchanged external data files reach the output: `clone` (default; a copy where the filesystem has no clones) or `copy`. */
  externalFiles?: ExternalFileMode;
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
  // The destination is checked before the passes run: they may take a while on a large model.
  // The analysis and the passes share the model files: each model is read once.
  const models = new ModelFiles();
  const front = analyzeFile(file, { registry: opts.registry, models });
  refuseDestination(front, opts);
  placeAnalyzed(front, { registry: opts.registry, models });
  return compileAnalyzed(front, opts);
}

/** Compiles .pipe source text; `file` says where it lives (paths in it are relative to its folder). */
export async function compileSource(source: string, file: string, opts: CompileOptions): Promise<CompileResult> {
  return compileAnalyzed(analyzeSource(source, file, { registry: opts.registry, place: true }), opts);
}

async function compileAnalyzed(front: FrontendResult, opts: CompileOptions): Promise<CompileResult> {
  const diagnostics = front.diagnostics.sorted();
  const result: CompileResult = { file: front.file, source: front.source, diagnostics };
  const { ir, placement } = front;
  if (!ir || !placement || front.diagnostics.hasErrors) return result;
  const outDir = resolve(opts.outDir);
  refuseDestination(front, opts);
  await signalCheckpoint();
  await writeDirAtomically(outDir, (dir) => writeOutputs(placement, front, dir, outDir, opts, diagnostics));
  return { ...result, outDir, ir };
}

/** Throws when `opts.outDir` would replace or lie inside an input, replace what pipec did not write, or cannot be created. */
function refuseDestination(front: FrontendResult, opts: CompileOptions): void {
  if (!front.ir || front.diagnostics.hasErrors) return;
  const outDir = resolve(opts.outDir);
  refuseOverlap(outDir, opts.outDir, compileInputs(front.file, front.ir));
  checkOutputFolder(outDir, opts.outDir, opts.force ?? false);
  checkDestination(opts.outDir, "folder");
}

/** Every file a compile reads: the output may not be, hold or lie inside any of them. */
function compileInputs(file: string, ir: PipelineIR): { path: string; role: string }[] {
  return [
    { path: file, role: "pipeline" },
    ...ir.models.map((m) => ({ path: m.path, role: `model ${m.name}` })),
    ...ir.tokenizers.flatMap((t) => (t.kind === "hf" ? [{ path: t.path, role: `tokenizer ${t.name}` }] : [])),
  ];
}

/** Writes every output into `dir`: the placed models, the driver, the IR dump and the manifest. */
async function writeOutputs(placement: Placement, front: FrontendResult, dir: string, finalDir: string, opts: CompileOptions, diagnostics: readonly Diagnostic[]): Promise<void> {
  const ir = placement.ir;
  const pipeDir = dirname(front.file);
  const rel = (p: string) => relative(pipeDir, p).split(sep).join("/");
  const modelFiles: Record<string, string> = {};
  const tokenizerFiles: Record<string, string> = {};
  const passRuns: Record<string, unknown>[] = [];
  const inputs: Record<string, unknown>[] = [{ role: "pipeline", path: basename(front.file), sha256: sha256(front.source) }];
  for (const { node: m, model, runs } of placement.models) {
    const target = `models/${m.name}/model.onnx`;
    for (const { step, record: r } of runs) passRuns.push({ model: m.name, pass: r.name, options: step.options, origin: step.origin, lossy: step.lossy, changed: r.changed, stats: r.stats });
    mkdirSync(join(dir, "models", m.name), { recursive: true });
    saveModel(model, join(dir, target), { weights: "preserve", externalFiles: opts.externalFiles });
    await signalCheckpoint();
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
      ...Object.fromEntries([s.kv, s.attention, s.speculate, s.sampling].map((l) => [l.use.slot, { method: l.use.method, params: l.use.params, lossy: l.use.lossy, level: l.level, ...(l.use.optional && { optional: true }), ...(l.unplaced && { unplaced: true }) }])),
      maxTokens: s.maxTokens,
      stop: s.stop,
      device: s.device,
    })),
    ...(ir.encoders && { encoders: ir.encoders.map((e) => ({ name: e.name, model: e.model, prune: { method: e.prune.use.method, params: e.prune.use.params, lossy: e.prune.use.lossy, level: e.prune.level }, device: e.device })) }),
    lossy: lossyRequests(ir),
    // Kept so that a cached run shows them again (run.ts).
    warnings: diagnostics.filter((d) => d.severity === "warning").map((d) => ({ message: d.message, ...(d.span && { span: d.span }) })),
    outputs: { driver: "driver.ts", ir: "pipeline.ir", models: modelFiles, tokenizers: tokenizerFiles },
    versions: { pipec: PIPEC_VERSION, onnxruntimeNode: dependencyVersion("onnxruntime-node"), chevrotain: dependencyVersion("chevrotain"), codeBlockWriter: dependencyVersion("code-block-writer") },
  };
  writeFileSync(join(dir, "manifest.json"), stableJson(manifest));
  writeOutputMarker(dir);
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
