/**
 * Zoo models for benchmarks, built on demand into bench/models/ (git-ignored) and reused while
 * their config is unchanged. Deterministic by seed; the 100M and 1B models stream their weights to
 * external data, so a build holds about one weight at a time (the 1B model, 4.2 GB of weights,
 * built with a 374 MiB peak RSS in 131 s on a shared 2-core machine).
 *
 * Usage: tsx bench/zoo.ts [5m|10m|100m|800m|1b|all] [--encoding decomposed|ms|standard]
 */
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ENCODINGS, llamaConfig, parameterCount, writeZooModel, type AttentionEncoding, type LlamaConfig } from "../graph/zoo/index.ts";

const MODELS_DIR = join(import.meta.dirname, "models");

/** Llama-shaped sizes: 5M and 10M (tiny-stories scale), 100M (GPT-2-small scale), 800M and 1B (Llama-3.2-1B shape, 32k vocab). */
export const BENCH_ZOO: Record<string, LlamaConfig> = {
  // ~5M, 4K positions: per-step host work and cache copies dominate its decode (bench/runtime.ts).
  "5m": llamaConfig({ vocabSize: 4096, hidden: 256, layers: 4, heads: 8, kvHeads: 4, intermediate: 688, maxPositions: 4096, seed: 5 }),
  "10m": llamaConfig({ vocabSize: 8192, hidden: 256, layers: 8, heads: 8, kvHeads: 4, intermediate: 688, maxPositions: 2048, seed: 10 }),
  "100m": llamaConfig({ vocabSize: 32000, hidden: 768, layers: 12, heads: 12, kvHeads: 4, intermediate: 2048, maxPositions: 2048, tiedEmbeddings: true, seed: 100 }),
  // ~790M: the 1B shape with a narrower MLP, for the memory-bandwidth row of bench/runtime.ts.
  "800m": llamaConfig({ vocabSize: 32000, hidden: 2048, layers: 16, heads: 32, kvHeads: 8, intermediate: 5632, maxPositions: 2048, tiedEmbeddings: true, seed: 800 }),
  "1b": llamaConfig({ vocabSize: 32000, hidden: 2048, layers: 16, heads: 32, kvHeads: 8, intermediate: 8192, maxPositions: 4096, tiedEmbeddings: true, seed: 1000 }),
};

/**
 * The path of the `size` zoo model in `encoding`, building it first when it is missing or was
 * built from another config. Builds go to a scratch folder renamed into place, so an
 * interrupted build never leaves a model that looks complete.
 */
export function ensureBenchModel(size: string, encoding: AttentionEncoding = "decomposed"): string {
  const config = BENCH_ZOO[size];
  if (!config) throw new Error(`unknown bench model '${size}': one of ${Object.keys(BENCH_ZOO).join(", ")}`);
  const dir = join(MODELS_DIR, `zoo-${size}-${encoding}`);
  const stamp = JSON.stringify(config);
  const stampPath = join(dir, "zoo-config.json");
  if (existsSync(stampPath) && readFileSync(stampPath, "utf8") === stamp) return join(dir, "model.onnx");

  const scratch = `${dir}.building`;
  rmSync(scratch, { recursive: true, force: true });
  writeZooModel(config, scratch, { encoding });
  writeFileSync(join(scratch, "zoo-config.json"), stamp);
  rmSync(dir, { recursive: true, force: true });
  renameSync(scratch, dir);
  return join(dir, "model.onnx");
}

if (process.argv[1] === import.meta.filename) {
  const args = process.argv.slice(2);
  const at = args.indexOf("--encoding");
  const encoding = (at >= 0 ? args.splice(at, 2)[1] : "decomposed") as AttentionEncoding;
  if (!ENCODINGS.includes(encoding)) throw new Error(`--encoding must be one of ${ENCODINGS.join(", ")}`);
  const sizes = args[0] === undefined || args[0] === "all" ? Object.keys(BENCH_ZOO) : [args[0]];
  for (const size of sizes) {
    const start = performance.now();
    const path = ensureBenchModel(size, encoding);
    const seconds = ((performance.now() - start) / 1000).toFixed(1);
    console.log(`${size}: ${parameterCount(BENCH_ZOO[size]!)} parameters, ${path} (${seconds} s, peak RSS ${Math.round(process.resourceUsage().maxRSS / 1024)} MiB)`);
  }
}
