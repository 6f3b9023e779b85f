/**
 * Sparse attention (StreamingLLM, TidalDecode, TokenSelect) against dense attention.
 *
 * Quality, on the trained models (stories260K from ../shared, imported with importLlama2c; the
 * project's trained model in examples/models/<name>/model.onnx when it exists): contexts of 384
 * tokens, the first 128 a prefill, then 256 teacher-forced decode steps on the sequence. Per step:
 * greedy agreement (sparse argmax = dense argmax), KL(dense || sparse) and the change of the
 * next token's NLL. Two kinds of context: the dense model's greedy continuation of BOS (what
 * generation produces) and its sampled continuation at temperature 1 (a stand-in for corpus text:
 * stories260K's tokenizer is not available, so no corpus can be tokenized for it). Budgets are
 * shares of the 384-token context: every method attends to at most that many keys per step
 * (StreamingLLM: 4 sinks + the rest as window; TokenSelect: 4 sinks + a quarter as window + the
 * rest selected; TidalDecode: top-k per head in its sparse layers).
 *
 * Speed and memory, on a zoo model whose attention dominates at long context (16 layers of 16
 * heads of width 16, MHA, a small MLP; random weights): decode tokens/s and KV-cache bytes at
 * contexts of 1K, 4K and 8K, at a 12.5% budget: one decode step on a cache of that length, the
 * fastest of several, the methods taking turns. StreamingLLM's cache is what its runtime
 * eviction keeps (4 + 1020 rows).
 *
 * Dense is measured twice: "dense" is the best dense variant (kv-append-only with split
 * attention: no cache Concat, attention over past and new rows as two blocks), "plain" the
 * exported model (which concatenates its whole cache every step). TidalDecode and TokenSelect
 * are composed with kv-append-only the way a .pipe compiles them, so their sparse layers read
 * only the selected past rows. Speeds are per second of wall time and of the process's CPU time
 * (one intra-op thread: what the step costs on a shared machine); ratios side by side.
 *
 * Usage: npx tsx bench/sparse-attention.ts [--part quality|speed|all] [--threads 1]
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { importLlama2c } from "../compiler/importers/llama2c.ts";
import type { Model } from "../compiler/ir/model.ts";
import { loadModel, saveModel } from "../compiler/onnx/index.ts";
import { buildZooModel, llamaConfig, type ZooConfig } from "../compiler/zoo/index.ts";
import { liftAttention } from "../passes/attention/lift.ts";
import { lowerAttention } from "../passes/attention/lower.ts";
import { createKvAppendOnly } from "../passes/kv-append-only.ts";
import { streamingLlm } from "../passes/streaming-llm.ts";
import { tidalDecode } from "../passes/tidal-decode.ts";
import { tokenSelect } from "../passes/token-select.ts";
import { argmax, createRng, DecoderModel, sampleSoftmax } from "../runtime/index.ts";

const args = process.argv.slice(2);
const option = (name: string, fallback: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : fallback);
const PART = option("--part", "all");
// One intra-op thread by default: its CPU time is the work a step does, whatever else runs.
const THREADS = Number(option("--threads", "1"));
const STORIES = join(import.meta.dirname, "..", "..", "shared", "fixtures", "stories260K", "stories260K.bin");
const TRAINED = join(import.meta.dirname, "..", "examples", "models");
const SCRATCH = mkdtempSync(join(tmpdir(), "pipec-sparse-bench-"));

type Method = "streaming" | "tidal" | "tokenselect";
const METHODS: Method[] = ["streaming", "tidal", "tokenselect"];

/**
 * Lift, make sparse at `budget` keys (a count, or "12.5%" of each step's context), lower.
 * `selectionCache`: TokenSelect's cache at that cosine threshold.
 */
function sparsify(model: Model, method: Method, budget: number | string, selectionCache?: number): Model {
  liftAttention(model);
  const tokens = typeof budget === "number" ? budget : undefined;
  const share = typeof budget === "string" ? { percent: Number(budget.replace("%", "")) } : undefined;
  if (method === "streaming") streamingLlm(model, { sinks: 4, window: (tokens ?? 1024) - 4 });
  if (method === "tidal") tidalDecode(model, { topK: share ?? { tokens: tokens! }, fullLayers: 2 });
  if (method === "tokenselect") {
    const window = tokens !== undefined ? Math.floor(tokens / 4) : 16;
    tokenSelect(model, { sinks: 4, window, topK: share ?? { tokens: tokens! - 4 - window }, kernelSize: -1, selectionCache: selectionCache === undefined ? undefined : { threshold: selectionCache } });
  }
  lowerAttention(model);
  return model;
}

function save(model: Model, name: string): string {
  const path = join(SCRATCH, `${name}.onnx`);
  saveModel(model, path, { weights: "inline" });
  return path;
}

// ---------------------------------------------------------------- quality

const PREFILL = 128;
const STEPS = 256;
const CONTEXT = PREFILL + STEPS;
const BUDGETS = [0.25, 0.125, 0.06];

interface Quality {
  agreement: number;
  kl: number;
  dNll: number;
}

/** Logits [steps, V] of the decode steps over `sequence` after a prefill of PREFILL tokens. */
async function stepLogits(path: string, sequence: number[]): Promise<Float32Array[]> {
  const model = await DecoderModel.open(path, { device: "cpu", threads: THREADS });
  const seq = model.newSequence();
  const rows: Float32Array[] = [];
  const lastRow = (t: ort.Tensor) => {
    const V = t.dims[2]!;
    return Float32Array.from((t.data as Float32Array).subarray(t.data.length - V));
  };
  rows.push(lastRow(await seq.forward(sequence.slice(0, PREFILL))));
  for (let i = PREFILL; i < sequence.length - 1; i++) rows.push(lastRow(await seq.forward([sequence[i]!])));
  await model.release();
  return rows;
}

function logSoftmax(x: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of x) max = Math.max(max, v);
  let sum = 0;
  for (const v of x) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(x, (v) => v - lse);
}

function compare(dense: Float32Array[], sparse: Float32Array[], sequence: number[]): Quality {
  let agree = 0;
  let kl = 0;
  let dNll = 0;
  dense.forEach((d, i) => {
    const s = sparse[i]!;
    if (argmax(d) === argmax(s)) agree++;
    const ld = logSoftmax(d);
    const ls = logSoftmax(s);
    for (let v = 0; v < ld.length; v++) kl += Math.exp(ld[v]!) * (ld[v]! - ls[v]!);
    const next = sequence[PREFILL + i]!;
    dNll += -ls[next]! + ld[next]!;
  });
  return { agreement: agree / dense.length, kl: kl / dense.length, dNll: dNll / dense.length };
}

/** The dense model's continuation of BOS: greedy, or sampled at temperature 1. */
async function continuation(path: string, bos: number, mode: "greedy" | "sampled"): Promise<number[]> {
  const model = await DecoderModel.open(path, { device: "cpu", threads: THREADS });
  const seq = model.newSequence();
  const rng = createRng(1234);
  const tokens = [bos];
  let logits = await seq.forward(tokens);
  while (tokens.length < CONTEXT) {
    const row = (logits.data as Float32Array).subarray(logits.data.length - logits.dims[2]!);
    const next = mode === "greedy" ? argmax(row) : sampleSoftmax(row, rng);
    tokens.push(next);
    logits = await seq.forward([next]);
  }
  await model.release();
  return tokens;
}

function trainedModels(): { name: string; path: string; bos: number }[] {
  const out: { name: string; path: string; bos: number }[] = [];
  if (existsSync(STORIES)) out.push({ name: "stories260K", path: importLlama2c(STORIES, join(SCRATCH, "stories")).modelPath, bos: 1 });
  if (existsSync(TRAINED)) {
    for (const name of readdirSync(TRAINED).sort()) {
      const path = join(TRAINED, name, "model.onnx");
      if (existsSync(path)) out.push({ name, path, bos: 1 });
    }
  }
  return out;
}

async function quality(): Promise<void> {
  const models = trainedModels();
  if (models.length === 0) {
    console.log("quality: no trained model (../shared/fixtures/stories260K or examples/models/*) — skipped");
    return;
  }
  console.log(`\n### Quality: ${STEPS} teacher-forced decode steps after a ${PREFILL}-token prefill (context ${CONTEXT})\n`);
  console.log("| model | context | method | budget | keys | greedy agreement | mean KL(dense‖sparse) | mean ΔNLL |");
  console.log("|---|---|---|---|---|---|---|---|");
  for (const m of models) {
    for (const mode of ["greedy", "sampled"] as const) {
      const sequence = await continuation(m.path, m.bos, mode);
      const dense = await stepLogits(m.path, sequence);
      for (const method of METHODS) {
        for (const share of BUDGETS) {
          const keys = Math.round(share * CONTEXT);
          const path = save(sparsify(await loadModel(m.path), method, keys), `${m.name}-${method}-${keys}`);
          const q = compare(dense, await stepLogits(path, sequence), sequence);
          console.log(`| ${m.name} | ${mode} | ${method} | ${share * 100}% | ${keys} | ${(q.agreement * 100).toFixed(1)}% | ${q.kl.toExponential(2)} | ${q.dNll >= 0 ? "+" : ""}${q.dNll.toFixed(4)} |`);
        }
      }
    }
  }
}

// ---------------------------------------------------------------- speed

/**
 * The same model (hidden 256, so the same KV bytes per token) in two head layouts: 16 heads of
 * width 16 (64-byte K/V rows) and 4 heads of width 64 (256-byte rows, nearer real models' 128).
 * A sparse layer reads its selected rows at scattered addresses: how much that costs against
 * streaming the whole cache depends on the row width.
 */
const SPEED_CONFIGS = [16, 4].map((heads) => llamaConfig({ vocabSize: 512, hidden: 256, layers: 16, heads, kvHeads: heads, intermediate: 256, maxPositions: 8192 + 64, seed: 7 }));
const CONTEXTS = [1024, 4096, 8192];
const STREAMING_CACHE = 1024;
const ROUNDS = 8;

/** Feeds for one decode step after `past` cached rows (random cache contents). */
function decodeFeeds(config: ZooConfig, past: number): Record<string, ort.Tensor> {
  const { heads, layers } = config;
  const D = config.hidden / heads;
  const rng = createRng(past);
  const feeds: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor("int64", BigInt64Array.from([5n]), [1, 1]),
    attention_mask: new ort.Tensor("int64", new BigInt64Array(past + 1).fill(1n), [1, past + 1]),
    position_ids: new ort.Tensor("int64", BigInt64Array.from([BigInt(past)]), [1, 1]),
  };
  for (let l = 0; l < layers; l++) {
    for (const kind of ["key", "value"]) feeds[`past_key_values.${l}.${kind}`] = new ort.Tensor("float32", Float32Array.from({ length: heads * past * D }, () => rng() * 2 - 1), [1, heads, past, D]);
  }
  return feeds;
}

interface Variant {
  name: string;
  path: string;
  /** Cache rows the method holds at a context length. */
  rows: (context: number) => number;
  /** Feeds of a steady state the variant keeps between steps, from one unmeasured step. */
  prime?: (session: ort.InferenceSession, feeds: Record<string, ort.Tensor>) => Promise<Record<string, ort.Tensor>>;
}

/**
 * TokenSelect's selection cache hit: one step with nothing cached (the vote runs), then its
 * fingerprints and indices fed back. The measured steps repeat that query, so every layer reuses
 * (cosine 1): the cost of a step when the cache holds, which is what a hit rate scales.
 */
async function primeSelectionCache(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
  const primed = { ...feeds };
  const inputs = session.inputNames.filter((n) => n.startsWith("tokenselect_cached_"));
  for (const name of inputs) {
    const meta = session.inputMetadata.find((m) => m.name === name)!;
    const size = meta.isTensor && typeof meta.shape[0] === "number" ? meta.shape[0] : 0;
    primed[name] = name.includes("fingerprint") ? new ort.Tensor("float32", new Float32Array(size), [size]) : new ort.Tensor("int64", new BigInt64Array(0), [0]);
  }
  const out = await session.run(primed);
  for (const name of inputs) primed[name] = out[name.replace("tokenselect_cached_", "tokenselect_")]!;
  return primed;
}

interface StepCost {
  wallMs: number;
  cpuMs: number;
}

/**
 * Wall and CPU milliseconds of one decode step per variant at `context`: the variants take
 * turns, step by step, and each keeps its fastest step, so load from other processes on a
 * shared machine falls on all of them alike and mostly drops out. CPU time (of the whole
 * process, one intra-op thread by default) is what the step costs whatever else runs.
 */
async function stepCosts(config: ZooConfig, variants: Variant[], context: number): Promise<StepCost[]> {
  const sessions = await Promise.all(variants.map((v) => ort.InferenceSession.create(v.path, { intraOpNumThreads: THREADS })));
  const shared = new Map<number, Record<string, ort.Tensor>>();
  for (const v of variants) if (!shared.has(v.rows(context))) shared.set(v.rows(context), decodeFeeds(config, v.rows(context)));
  const feeds = await Promise.all(variants.map((v, i) => (v.prime ? v.prime(sessions[i]!, shared.get(v.rows(context))!) : shared.get(v.rows(context))!)));
  const best = variants.map(() => ({ wallMs: Infinity, cpuMs: Infinity }));
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < variants.length; i++) {
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      // Only the logits come back to JS: an in-graph cache Concat runs, its copy out does not (the runtime binds it).
      await sessions[i]!.run(feeds[i]!, ["logits"]);
      const wallMs = performance.now() - t0;
      const cpu = process.cpuUsage(cpu0);
      if (round === 0) continue;
      best[i]!.wallMs = Math.min(best[i]!.wallMs, wallMs);
      best[i]!.cpuMs = Math.min(best[i]!.cpuMs, (cpu.user + cpu.system) / 1000);
    }
  }
  await Promise.all(sessions.map((s) => s.release()));
  return best;
}

/** The model with each layer returning only its new K/V rows and attention split over past and new rows (kv-append-only's default). */
function appendOnly(model: Model): Model {
  createKvAppendOnly().run(model, { options: {}, note: () => {} });
  return model;
}

async function speed(): Promise<void> {
  for (const config of SPEED_CONFIGS) await speedOf(config);
}

async function speedOf(config: ZooConfig): Promise<void> {
  const { heads, layers, hidden } = config;
  const rowBytes = layers * 2 * heads * (hidden / heads) * 4;
  const zoo = () => buildZooModel(config);
  // "dense" is the best dense variant (append-only cache, split attention); "plain" is the exported model.
  const variants: Variant[] = [
    { name: "dense", path: save(appendOnly(zoo()), `speed-dense-${heads}`), rows: (c) => c },
    { name: "plain", path: save(zoo(), `speed-plain-${heads}`), rows: (c) => c },
    { name: "streaming", path: save(sparsify(zoo(), "streaming", STREAMING_CACHE), `speed-streaming-${heads}`), rows: (c) => Math.min(c, STREAMING_CACHE) },
    { name: "tidal", path: save(appendOnly(sparsify(zoo(), "tidal", "12.5%")), `speed-tidal-${heads}`), rows: (c) => c },
    { name: "tokenselect", path: save(appendOnly(sparsify(zoo(), "tokenselect", "12.5%")), `speed-tokenselect-${heads}`), rows: (c) => c },
    { name: "tokenselect+cache", path: save(appendOnly(sparsify(zoo(), "tokenselect", "12.5%", 0.9)), `speed-tokenselect-cache-${heads}`), rows: (c) => c, prime: primeSelectionCache },
  ];
  console.log(`\n### Speed and memory: zoo model ${layers} layers x ${heads} heads of width ${hidden / heads} (MHA), ${THREADS} intra-op thread(s), budget 12.5%, load average ${loadavg().map((l) => l.toFixed(1)).join(" ")}\n`);
  console.log("| context | method | decode tok/s (wall) | tok/CPU-s | vs dense (CPU) | vs plain (CPU) | vs dense (wall) | KV bytes | KV vs dense |");
  console.log("|---|---|---|---|---|---|---|---|---|");
  for (const context of CONTEXTS) {
    const costs = await stepCosts(config, variants, context);
    const [dense, plain] = costs;
    variants.forEach((v, i) => {
      const c = costs[i]!;
      const kv = v.rows(context) * rowBytes;
      const cells = [
        context, v.name, (1000 / c.wallMs).toFixed(1), (1000 / c.cpuMs).toFixed(1),
        `${(dense!.cpuMs / c.cpuMs).toFixed(2)}x`, `${(plain!.cpuMs / c.cpuMs).toFixed(2)}x`, `${(dense!.wallMs / c.wallMs).toFixed(2)}x`,
        `${(kv / 2 ** 20).toFixed(1)} MiB`, (kv / (context * rowBytes)).toFixed(3),
      ];
      console.log(`| ${cells.join(" | ")} |`);
    });
  }
}

try {
  console.log(`command: npx tsx bench/sparse-attention.ts${args.length ? ` ${args.join(" ")}` : ""}`);
  if (PART === "quality" || PART === "all") await quality();
  if (PART === "speed" || PART === "all") await speed();
} finally {
  rmSync(SCRATCH, { recursive: true, force: true });
}
