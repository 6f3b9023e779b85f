import { createHash } from "node:crypto";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { tsImport } from "tsx/esm/api";
import type { GenerationEvent } from "../../runtime/index.ts";
import { compilerIdentity } from "../paths.ts";
import { compileFile, type CompileResult } from "./compile.ts";
import { analyzeFile } from "./frontend.ts";
import { visionCompanions } from "./vision-files.ts";

export interface RunOptions {
  /** Where compiled pipelines are kept; default `.pipec-cache` beside the .pipe file. */
  cacheDir?: string;
  device?: "auto" | "cpu" | "cuda" | "webgpu";
  maxTokens?: number;
  /** The image of a pipeline with an encode stage (a PNG or JPEG file). */
  image?: string;
}

/** A compiled pipeline, as its driver.ts creates it. */
export interface CompiledPipeline {
  generate(prompt: string | readonly number[], options?: { maxTokens?: number; stop?: readonly string[]; signal?: AbortSignal; image?: string }): AsyncGenerator<GenerationEvent>;
  close(): Promise<void>;
}

/**
 * Loads a folder written by compile: imports its driver.ts and creates the pipeline. The import
 * goes through tsx, since driver.ts is TypeScript and the bundled CLI runs on plain Node.
 */
export async function loadCompiled(outDir: string, options: { device?: RunOptions["device"]; threads?: number } = {}): Promise<CompiledPipeline> {
  const driver = (await tsImport(pathToFileURL(join(resolve(outDir), "driver.ts")).href, import.meta.url)) as { createPipeline(o: typeof options): Promise<CompiledPipeline> };
  return driver.createPipeline(options);
}

export type PreparedRun = { compile: CompileResult; outDir?: undefined } | { compile: CompileResult; outDir: string };

/**
 * Compiles the pipeline into the cache unless the cached output is up to date: its key hashes
 * pipec's version, the .pipe text and the size and mtime of every file it reads.
 */
export async function prepareRun(file: string, opts: RunOptions = {}): Promise<PreparedRun> {
  const front = analyzeFile(file);
  const cacheRoot = resolve(opts.cacheDir ?? join(dirname(resolve(file)), ".pipec-cache"));
  const outDir = join(cacheRoot, basename(file, ".pipe"));
  const keyFile = `${outDir}.key`;
  if (!front.ir || front.diagnostics.hasErrors) return { compile: { file: front.file, source: front.source, diagnostics: front.diagnostics.sorted() } };
  const key = cacheKey(front.source, [...front.ir.models.flatMap((m) => [m.path, ...visionCompanions(m.facts).map((c) => join(dirname(m.path), c))]), ...front.ir.tokenizers.flatMap((t) => (t.kind === "hf" ? [t.path] : []))]);
  if (existsSync(keyFile) && existsSync(join(outDir, "driver.ts")) && readFileSync(keyFile, "utf8") === key) {
    return { compile: { file: front.file, source: front.source, diagnostics: front.diagnostics.sorted(), ir: front.ir, outDir }, outDir };
  }
  const compile = await compileFile(file, { outDir });
  if (!compile.outDir) return { compile };
  writeFileSync(keyFile, key);
  return { compile, outDir };
}

/** Runs a compiled pipeline folder's driver on one prompt, yielding its events. */
export async function* runCompiled(outDir: string, prompt: string | readonly number[], opts: RunOptions = {}): AsyncGenerator<GenerationEvent> {
  const pipeline = await loadCompiled(outDir, opts.device ? { device: opts.device } : {});
  try {
    yield* pipeline.generate(prompt, { ...(opts.maxTokens !== undefined && { maxTokens: opts.maxTokens }), ...(opts.image !== undefined && { image: opts.image }) });
  } finally {
    await pipeline.close();
  }
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
