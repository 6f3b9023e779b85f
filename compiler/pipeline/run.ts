import { createHash } from "node:crypto";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { tsImport } from "tsx/esm/api";
import type { Span } from "../../dsl/ast.ts";
import type { Diagnostic } from "../../dsl/diagnostics.ts";
import type { GenerationEvent, SamplingConfig } from "../../runtime/index.ts";
import { compilerIdentity } from "../paths.ts";
import { cacheLimitBytes, cacheRoot, entryFor, evictToLimit, keyFileOf, touchEntry } from "./cache-dir.ts";
import { compileFile, type CompileResult } from "./compile.ts";
import { analyzeFile } from "./frontend.ts";
import { visionCompanions } from "./vision-files.ts";

export interface RunOptions {
  /** Where compiled pipelines are kept; default the user's cache folder (see cache-dir.ts). */
  cacheDir?: string;
  /** The entry folder inside the cache; default one named after the .pipe file and a hash of its path. */
  cacheEntry?: string;
  device?: "auto" | "cpu" | "cuda" | "webgpu";
  threads?: number;
  /** Receives the line saying `auto` found no GPU. */
  onNotice?: (line: string) => void;
  maxTokens?: number;
  stop?: readonly string[];
  sampling?: SamplingConfig;
  signal?: AbortSignal;
  /** The image of a pipeline with an encode stage (a PNG or JPEG file). */
  image?: string;
  /** Drop the compiled pipeline's warm-state.json before it opens: speculation measures and learns again. */
  resetWarmState?: boolean;
}

/** A compiled pipeline, as its driver.ts creates it. */
export interface CompiledPipeline {
  generate(prompt: string | readonly number[], options?: { maxTokens?: number; stop?: readonly string[]; sampling?: SamplingConfig; signal?: AbortSignal; image?: string }): AsyncGenerator<GenerationEvent>;
  close(): Promise<void>;
}

/**
 * Loads a folder written by compile: imports its driver.ts and creates the pipeline. The import
 * goes through tsx, since driver.ts is TypeScript and the bundled CLI runs on plain Node.
 */
export async function loadCompiled(
  outDir: string,
  options: Pick<RunOptions, "device" | "threads" | "onNotice"> & { /** Drop the pipeline's warm-state.json (speculation measures and learns again). */ resetWarmState?: boolean } = {},
): Promise<CompiledPipeline> {
  const driver = (await tsImport(pathToFileURL(join(resolve(outDir), "driver.ts")).href, import.meta.url)) as { createPipeline(o: typeof options): Promise<CompiledPipeline> };
  return driver.createPipeline(options);
}

export type PreparedRun = { compile: CompileResult; outDir?: undefined } | { compile: CompileResult; outDir: string };

/**
 * Compiles the pipeline into the cache unless the cached output is up to date: its key hashes
 * pipec's version, the .pipe text and the size and mtime of every file it reads. The entry used
 * becomes the most recent; older ones are evicted beyond the cache's size limit.
 */
export async function prepareRun(file: string, opts: RunOptions = {}): Promise<PreparedRun> {
  const front = analyzeFile(file);
  const root = cacheRoot(opts.cacheDir);
  const outDir = resolve(opts.cacheEntry ?? entryFor(root, file));
  const keyFile = keyFileOf(outDir);
  if (!front.ir || front.diagnostics.hasErrors) return { compile: { file: front.file, source: front.source, diagnostics: front.diagnostics.sorted() } };
  const key = cacheKey(front.source, [...front.ir.models.flatMap((m) => [m.path, ...visionCompanions(m.facts).map((c) => join(dirname(m.path), c))]), ...front.ir.tokenizers.flatMap((t) => (t.kind === "hf" ? [t.path] : []))]);
  if (existsSync(keyFile) && existsSync(join(outDir, "driver.ts")) && readFileSync(keyFile, "utf8") === key) {
    touchEntry(outDir);
    return { compile: { file: front.file, source: front.source, diagnostics: storedWarnings(outDir), ir: front.ir, outDir }, outDir };
  }
  // The entry is the cache's own: an older layout's folder there may be replaced.
  const compile = await compileFile(file, { outDir, force: true });
  if (!compile.outDir) return { compile };
  writeFileSync(keyFile, key);
  evictToLimit(root, cacheLimitBytes(), outDir);
  return { compile, outDir };
}

/** Runs a compiled pipeline folder's driver on one prompt, yielding its events. */
export async function* runCompiled(outDir: string, prompt: string | readonly number[], opts: RunOptions = {}): AsyncGenerator<GenerationEvent> {
  const { device, threads, onNotice, maxTokens, stop, sampling, signal, resetWarmState } = opts;
  const pipeline = await loadCompiled(outDir, { device, threads, onNotice, ...(resetWarmState && { resetWarmState }) });
  try {
    yield* pipeline.generate(prompt, { maxTokens, stop, sampling, signal, ...(opts.image !== undefined && { image: opts.image }) });
  } finally {
    await pipeline.close();
  }
}

/** Where a compiled pipeline with speculation keeps what it measured and learned (its driver reads and writes it). */
export function warmStateFile(outDir: string): string {
  return join(outDir, "warm-state.json");
}

/** The warnings the compile gave (manifest.json keeps them), so every cached run shows them as the first did. */
function storedWarnings(outDir: string): Diagnostic[] {
  const manifest = JSON.parse(readFileSync(join(outDir, "manifest.json"), "utf8")) as { warnings?: { message: string; span?: Span }[] };
  return (manifest.warnings ?? []).map((w) => ({ severity: "warning", message: w.message, ...(w.span && { span: w.span }) }));
}

function cacheKey(source: string, files: string[]): string {
  const h = createHash("sha256").update(`pipec ${compilerIdentity()}\0`).update(source);
  for (const f of files) {
    const s = statSync(f);
    h.update(`\0${f}\0${s.size}\0${s.mtimeMs}`);
    for (const config of ["config.json", "genai_config.json", "tokenizer_config.json"]) {
      const c = join(dirname(f), config);
      if (existsSync(c)) h.update(`\0${c}\0${statSync(c).mtimeMs}`);
    }
  }
  return h.digest("hex");
}
