/**
 * Sparse attention (StreamingLLM, TidalDecode, TokenSelect) against dense attention.
 *
 * Quality, on the trained models (stories260K from ../shared, imported with importLlama2c; the
 * project's trained model in examples/models/<name>/model.onnx when it exists): contexts of 384
 * tokens, the first 128 a prefill, then 256 teacher-forced decode steps on the sequence. Per step:
 * greedy agreement (sparse argmax = dense argmax), KL(dense || sparse) and the change of the
 * next token's NLL. Kinds of context: the dense model's greedy continuation of BOS (what
 * generation produces), its sampled continuation at temperature 1 (a stand-in for corpus text:
 * stories260K's tokenizer is not available, so no corpus can be tokenized for it), and, for a
 * model with a tokenizer.json (sotu-tiny), real text: Lincoln (test/fixtures/prose). Budgets are
 * shares of the 384-token context: every method attends to at most that many keys per step
 * (StreamingLLM: 4 sinks + the rest as window; TokenSelect: 4 sinks + a quarter as window + the
 * rest selected; TidalDecode: top-k per head in its sparse layers).
 *
 * Speed and memory, on a zoo model whose attention dominates at long context (16 layers of 16
 * heads of width 16, MHA, a small MLP; random weights): decode tokens/s and KV-cache bytes at
 * contexts of 1K, 4K and 8K, at a 12.5% budget: one decode step on a cache of that length, the
 * fastest of several, the methods taking turns. StreamingLLM's cache is what its runtime
 * eviction keeps (4 + 1020 rows). TokenSelect's selection cache in three rows: a hit (every
 * layer reuses: the cost a hit rate scales), a miss (nothing cached: every layer votes, plus the
 * cache's own work), and the zoo model's measured hit rate over real consecutive greedy decode
 * steps (its own tokens, positions advancing, the state carried; the past stays the measured
 * context), priced as that mix of the hit and miss costs.
 *
 * Dense is measured twice: "dense" is the best dense variant (kv-append-only with split
 * attention: no cache Concat, attention over past and new rows as two blocks), "plain" the
 * exported model (which concatenates its whole cache every step). StreamingLLM, TidalDecode and
 * TokenSelect are composed with kv-append-only the way a .pipe compiles them, so no layer
 * concatenates the cache and the sparse layers read only the selected past rows. Speeds are per second of wall time and of the process's CPU time
 * (one intra-op thread: what the step costs on a shared machine); ratios side by side.
 *
 * Usage: npx tsx bench/sparse-attention.ts [--part quality|speed|trained-speed|profile|all] [--threads 1]
 * (trained-speed: only the trained model's speed table, which --part speed ends with; profile:
 * onnxruntime's profiler on one decode step, `--method dense|streaming|tidal|tokenselect --heads 16|4
 * --context N`, the time per op type, each node's fastest of the steps; not part of all)
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { importLlama2c } from "../graph/importers/llama2c.ts";
import type { Model } from "../graph/ir/model.ts";
import { loadModel, saveModel } from "../graph/onnx/index.ts";
import { buildZooModel, llamaConfig, type ZooConfig } from "../graph/zoo/index.ts";
import { liftAttention } from "../passes/attention/lift.ts";
import { lowerAttention } from "../passes/attention/lower.ts";
import { createKvAppendOnly } from "../passes/kv/kv-append-only.ts";
import type { FingerprintQuery } from "../passes/sparse-attention/selection-cache.ts";
import { streamingLlm } from "../passes/kv/streaming-llm.ts";
import { tidalDecode } from "../passes/sparse-attention/tidal-decode.ts";
import { tokenSelect } from "../passes/sparse-attention/token-select.ts";
import { argmax, createRng, DecoderModel, loadTokenizer, sampleSoftmax, TokenSelectCache } from "../runtime/index.ts";

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

/** TokenSelect's selection cache: its cosine threshold, and which query it fingerprints (default: un-rotated). */
interface CacheSetting {
  threshold: number;
  fingerprint?: FingerprintQuery;
}

/**
 * Lift, make sparse at `budget` keys (a count, or "12.5%" of each step's context), lower.
 * `selectionCache`: TokenSelect's cache.
 */
function sparsify(model: Model, method: Method, budget: number | string, selectionCache?: CacheSetting): Model {
  liftAttention(model);
  const tokens = typeof budget === "number" ? budget : undefined;
  const share = typeof budget === "string" ? { percent: Number(budget.replace("%", "")) } : undefined;
  if (method === "streaming") streamingLlm(model, { sinks: 4, window: (tokens ?? 1024) - 4 });
  if (method === "tidal") tidalDecode(model, { topK: share ?? { tokens: tokens! }, fullLayers: 2 });
  if (method === "tokenselect") {
    const window = tokens !== undefined ? Math.floor(tokens / 4) : 16;
    // top_k counts every key a step attends, the sinks and the window included.
    tokenSelect(model, { sinks: 4, window, topK: share ?? { tokens: tokens! }, kernelSize: -1, selectionCache });
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

/** Logits [steps, V] of the decode steps over `sequence` after a prefill of PREFILL tokens, and the selection cache's reuse rate (layer-steps). */
async function stepLogits(path: string, sequence: number[]): Promise<{ rows: Float32Array[]; hitRate: number }> {
  const model = await DecoderModel.open(path, { device: "cpu", threads: THREADS });
  const seq = model.newSequence();
  const rows: Float32Array[] = [];
  const lastRow = (t: ort.Tensor) => {
    const V = t.dims[2]!;
    return Float32Array.from((t.data as Float32Array).subarray(t.data.length - V));
  };
  rows.push(lastRow(await seq.forward(sequence.slice(0, PREFILL))));
  for (let i = PREFILL; i < sequence.length - 1; i++) rows.push(lastRow(await seq.forward([sequence[i]!])));
  const { reused, recomputed } = seq.policies.find(TokenSelectCache) ?? { reused: 0, recomputed: 0 };
  await model.release();
  return { rows, hitRate: reused / Math.max(1, reused + recomputed) };
}

function logSoftmax(x: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of x) max = Math.max(max, v);
  let sum = 0;
  for (const v of x) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(x, (v) => v - lse);
}

/** `sparse` against `dense` step by step (`dense` is the reference the KL is taken from). */
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

interface TrainedModel {
  name: string;
  path: string;
  bos: number;
  /** Its tokenizer.json, when it has one: real text can then be a context. */
  tokenizer?: string;
}

function trainedModels(): TrainedModel[] {
  const out: TrainedModel[] = [];
  if (existsSync(STORIES)) out.push({ name: "stories260K", path: importLlama2c(STORIES, join(SCRATCH, "stories")).modelPath, bos: 1 });
  if (existsSync(TRAINED)) {
    for (const name of readdirSync(TRAINED).sort()) {
      const path = join(TRAINED, name, "model.onnx");
      const tokenizer = join(TRAINED, name, "tokenizer.json");
      if (existsSync(path)) out.push({ name, path, bos: 1, tokenizer: existsSync(tokenizer) ? tokenizer : undefined });
    }
  }
  return out;
}

const PROSE = join(import.meta.dirname, "..", "test", "fixtures", "prose", "lincoln.txt");
type ContextKind = "greedy" | "sampled" | "corpus";

/** The context of `kind`: the dense model's continuation of BOS, or BOS + the first tokens of real text. */
async function context(m: TrainedModel, kind: ContextKind): Promise<number[]> {
  if (kind !== "corpus") return continuation(m.path, m.bos, kind);
  const tokens = [m.bos, ...loadTokenizer(m.tokenizer!).encode(readFileSync(PROSE, "utf8"))];
  if (tokens.length < CONTEXT) throw new Error(`${PROSE} holds ${tokens.length} tokens, fewer than the ${CONTEXT} a context needs`);
  return tokens.slice(0, CONTEXT);
}

/** TokenSelect's selection cache in the quality part: the paper's threshold. */
const CACHE_THRESHOLD = 0.9;

async function quality(): Promise<void> {
  const models = trainedModels();
  if (models.length === 0) {
    console.log("quality: no trained model (../shared/fixtures/stories260K or examples/models/*) — skipped");
    return;
  }
  console.log(`\n### Quality: ${STEPS} teacher-forced decode steps after a ${PREFILL}-token prefill (context ${CONTEXT})\n`);
  console.log("| model | context | method | budget | keys | greedy agreement | mean KL(dense‖sparse) | mean ΔNLL |");
  console.log("|---|---|---|---|---|---|---|---|");
  const cacheRows: string[] = [];
  for (const m of models) {
    const kinds: ContextKind[] = m.tokenizer ? ["greedy", "sampled", "corpus"] : ["greedy", "sampled"];
    for (const kind of kinds) {
      const sequence = await context(m, kind);
      const { rows: dense } = await stepLogits(m.path, sequence);
      const row = (method: string, share: number, keys: number, q: Quality) =>
        console.log(`| ${m.name} | ${kind} | ${method} | ${share * 100}% | ${keys} | ${(q.agreement * 100).toFixed(1)}% | ${q.kl.toExponential(2)} | ${q.dNll >= 0 ? "+" : ""}${q.dNll.toFixed(4)} |`);
      const run = async (method: Method, keys: number, cache?: CacheSetting) => {
        const name = `${m.name}-${method}-${keys}${cache ? `-cache-${cache.fingerprint ?? "unrotated"}` : ""}`;
        return stepLogits(save(sparsify(await loadModel(m.path), method, keys, cache), name), sequence);
      };
      for (const method of METHODS) {
        for (const share of BUDGETS) {
          const keys = Math.round(share * CONTEXT);
          const sparse = await run(method, keys);
          row(method, share, keys, compare(dense, sparse.rows, sequence));
          if (method !== "tokenselect") continue;
          const cached = await run(method, keys, { threshold: CACHE_THRESHOLD });
          row(`tokenselect+cache`, share, keys, compare(dense, cached.rows, sequence));
          const rotated = await run(method, keys, { threshold: CACHE_THRESHOLD, fingerprint: "rotated" });
          const vsPlain = compare(sparse.rows, cached.rows, sequence);
          cacheRows.push(`| ${m.name} | ${kind} | ${share * 100}% | ${keys} | ${(cached.hitRate * 100).toFixed(1)}% | ${(rotated.hitRate * 100).toFixed(1)}% | ${(vsPlain.agreement * 100).toFixed(1)}% | ${vsPlain.kl.toExponential(2)} |`);
        }
      }
    }
  }
  console.log(`\n### TokenSelect's selection cache at cosine ${CACHE_THRESHOLD} (the tokenselect+cache rows above): hit rates and the cache against the cache-less pass\n`);
  console.log("| model | context | budget | keys | layer-steps reused (un-rotated fingerprint) | reused (rotated fingerprint) | greedy agreement with tokenselect | mean KL(tokenselect‖+cache) |");
  console.log("|---|---|---|---|---|---|---|---|");
  for (const line of cacheRows) console.log(line);
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

/** Feeds with nothing in TokenSelect's selection cache: zero fingerprints, no indices (every layer votes). */
function emptySelectionCache(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>): Record<string, ort.Tensor> {
  const empty = { ...feeds };
  for (const name of session.inputNames.filter((n) => n.startsWith("tokenselect_cached_"))) {
    const meta = session.inputMetadata.find((m) => m.name === name)!;
    const size = meta.isTensor && typeof meta.shape[0] === "number" ? meta.shape[0] : 0;
    empty[name] = name.includes("fingerprint") ? new ort.Tensor("float32", new Float32Array(size), [size]) : new ort.Tensor("int64", new BigInt64Array(0), [0]);
  }
  return empty;
}

/** The selection state a step leaves, fed to the next one (the runtime's TokenSelectCache does the same). */
function carrySelection(feeds: Record<string, ort.Tensor>, out: Record<string, ort.Tensor>): Record<string, ort.Tensor> {
  const next = { ...feeds };
  for (const name of Object.keys(feeds)) if (name.startsWith("tokenselect_cached_")) next[name] = out[name.replace("tokenselect_cached_", "tokenselect_")]!;
  return next;
}

/**
 * TokenSelect's selection cache hit: one step with nothing cached (the vote runs), then its
 * fingerprints and indices fed back. The measured steps repeat that query, so every layer reuses
 * (cosine 1): the cost of a step when the cache holds, which is what a hit rate scales.
 */
async function primeSelectionCache(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
  const empty = emptySelectionCache(session, feeds);
  return carrySelection(empty, await session.run(empty));
}

/**
 * The share of layer-steps that reuse their selection over `steps` real consecutive decode steps
 * from `feeds` (a step after `context` rows): each step feeds `next(step, logits)` at the next
 * position and carries the selection state; the past stays the measured context (the hit
 * decision reads only the query fingerprints). The first step, with nothing cached, is no decision.
 */
async function measuredHitRate(path: string, feeds0: Record<string, ort.Tensor>, context: number, steps: number, next: (step: number, logits: Float32Array) => number): Promise<number> {
  const session = await ort.InferenceSession.create(path, { intraOpNumThreads: THREADS });
  let feeds = emptySelectionCache(session, feeds0);
  let [reused, decisions] = [0, 0];
  for (let step = 0; step < steps; step++) {
    const out = await session.run(feeds);
    const layers = session.outputNames.filter((n) => n.startsWith("tokenselect_reused."));
    for (const name of step > 0 ? layers : []) {
      decisions++;
      if ((out[name]!.data as Uint8Array)[0]) reused++;
    }
    feeds = carrySelection(feeds, out);
    feeds.input_ids = new ort.Tensor("int64", BigInt64Array.from([BigInt(next(step, out.logits!.data as Float32Array))]), [1, 1]);
    feeds.position_ids = new ort.Tensor("int64", BigInt64Array.from([BigInt(context + step + 1)]), [1, 1]);
  }
  await session.release();
  return reused / Math.max(1, decisions);
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
async function stepCosts(feedsFor: (rows: number) => Record<string, ort.Tensor>, variants: Variant[], context: number): Promise<StepCost[]> {
  const sessions = await Promise.all(variants.map((v) => ort.InferenceSession.create(v.path, { intraOpNumThreads: THREADS })));
  const shared = new Map<number, Record<string, ort.Tensor>>();
  for (const v of variants) if (!shared.has(v.rows(context))) shared.set(v.rows(context), feedsFor(v.rows(context)));
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

/** StreamingLLM as kv.streaming compiles it (option kv_append_only): attention over past and new rows apart, then the append-only contract. */
function streamingAppendOnly(model: Model): Model {
  liftAttention(model);
  streamingLlm(model, { sinks: 4, window: STREAMING_CACHE - 4, appendOnly: true });
  return appendOnly(model);
}

async function speed(zoo: boolean): Promise<void> {
  if (zoo) for (const config of SPEED_CONFIGS) await speedOf(config);
  for (const m of trainedModels()) if (m.tokenizer) await speedTrained(m);
}

async function speedOf(config: ZooConfig): Promise<void> {
  const { heads, layers, hidden } = config;
  const rowBytes = layers * 2 * heads * (hidden / heads) * 4;
  const zoo = () => buildZooModel(config);
  // "dense" is the best dense variant (append-only cache, split attention); "plain" is the exported model.
  const cachePath = save(appendOnly(sparsify(zoo(), "tokenselect", "12.5%", { threshold: 0.9 })), `speed-tokenselect-cache-${heads}`);
  const variants: Variant[] = [
    { name: "dense", path: save(appendOnly(zoo()), `speed-dense-${heads}`), rows: (c) => c },
    { name: "plain", path: save(zoo(), `speed-plain-${heads}`), rows: (c) => c },
    { name: "streaming", path: save(streamingAppendOnly(zoo()), `speed-streaming-${heads}`), rows: (c) => Math.min(c, STREAMING_CACHE) },
    { name: "tidal", path: save(appendOnly(sparsify(zoo(), "tidal", "12.5%")), `speed-tidal-${heads}`), rows: (c) => c },
    { name: "tokenselect", path: save(appendOnly(sparsify(zoo(), "tokenselect", "12.5%")), `speed-tokenselect-${heads}`), rows: (c) => c },
    { name: "tokenselect+cache hit", path: cachePath, rows: (c) => c, prime: primeSelectionCache },
    { name: "tokenselect+cache miss", path: cachePath, rows: (c) => c, prime: async (session, feeds) => emptySelectionCache(session, feeds) },
  ];
  console.log(`\n### Speed and memory: zoo model ${layers} layers x ${heads} heads of width ${hidden / heads} (MHA), ${THREADS} intra-op thread(s), budget 12.5%, load average ${loadavg().map((l) => l.toFixed(1)).join(" ")}\n`);
  console.log("| context | method | decode tok/s (wall) | tok/CPU-s | vs dense (CPU) | vs plain (CPU) | vs dense (wall) | KV bytes | KV vs dense |");
  console.log("|---|---|---|---|---|---|---|---|---|");
  for (const context of CONTEXTS) {
    const costs = await stepCosts((rows) => decodeFeeds(config, rows), variants, context);
    // The selection cache at the hit rate the model produces: a mix of the hit and miss steps' costs.
    const hitRate = await measuredHitRate(cachePath, decodeFeeds(config, context), context, HIT_RATE_STEPS, (_, logits) => argmax(logits.subarray(logits.length - config.vocabSize)));
    printSpeedRows(context, variants, costs, hitRate, rowBytes);
  }
}

/** The table rows at one context; the last one prices the selection cache at `hitRate` from the hit and miss rows. */
function printSpeedRows(context: number, variants: Variant[], costs: StepCost[], hitRate: number, rowBytes: number): void {
  const [dense, plain] = costs;
  const hit = costs[variants.findIndex((v) => v.name === "tokenselect+cache hit")]!;
  const miss = costs[variants.findIndex((v) => v.name === "tokenselect+cache miss")]!;
  const mixed = { wallMs: hitRate * hit.wallMs + (1 - hitRate) * miss.wallMs, cpuMs: hitRate * hit.cpuMs + (1 - hitRate) * miss.cpuMs };
  const rows = [...variants.map((v, i) => ({ name: v.name, rows: v.rows(context), cost: costs[i]! })), { name: `tokenselect+cache (measured: ${(hitRate * 100).toFixed(1)}% hits)`, rows: context, cost: mixed }];
  for (const { name, rows: kvRows, cost: c } of rows) {
    const kv = kvRows * rowBytes;
    const cells = [
      context, name, (1000 / c.wallMs).toFixed(1), (1000 / c.cpuMs).toFixed(1),
      `${(dense!.cpuMs / c.cpuMs).toFixed(2)}x`, `${(plain!.cpuMs / c.cpuMs).toFixed(2)}x`, `${(dense!.wallMs / c.wallMs).toFixed(2)}x`,
      `${(kv / 2 ** 20).toFixed(1)} MiB`, (kv / (context * rowBytes)).toFixed(3),
    ];
    console.log(`| ${cells.join(" | ")} |`);
  }
}

/**
 * Speed on a trained model with a real cache and its real hit rate (sotu-tiny: 4 layers, 8 query
 * / 4 KV heads of 32): the context is real text (Lincoln, repeated to length), prefilled by the
 * exported model in chunks of 512; the measured hit rate feeds the text's next tokens. Past 512
 * positions sotu-tiny extrapolates (trained on 512-token windows; max_position_embeddings 2048,
 * its rotary computed, not tabled, so it runs): the steps cost what they cost, but what the
 * queries look like there is not what training produced.
 */
async function speedTrained(m: TrainedModel): Promise<void> {
  const contexts = [4096, 8192];
  const prose = loadTokenizer(m.tokenizer!).encode(readFileSync(PROSE, "utf8"));
  const text = [m.bos];
  while (text.length < contexts.at(-1)! + HIT_RATE_STEPS + 1) text.push(...prose);
  const load = () => loadModel(m.path);
  const cachePath = save(appendOnly(sparsify(load(), "tokenselect", "12.5%", { threshold: 0.9 })), `trained-tokenselect-cache`);
  const variants: Variant[] = [
    { name: "dense", path: save(appendOnly(load()), `trained-dense`), rows: (c) => c },
    { name: "plain", path: m.path, rows: (c) => c },
    { name: "tokenselect", path: save(appendOnly(sparsify(load(), "tokenselect", "12.5%")), `trained-tokenselect`), rows: (c) => c },
    { name: "tokenselect+cache hit", path: cachePath, rows: (c) => c, prime: primeSelectionCache },
    { name: "tokenselect+cache miss", path: cachePath, rows: (c) => c, prime: async (session, feeds) => emptySelectionCache(session, feeds) },
  ];
  const plain = await ort.InferenceSession.create(m.path, { intraOpNumThreads: THREADS });
  const pastInputs = plain.inputNames.filter((n) => n.startsWith("past_key_values."));
  const { kvHeads, D } = pastDims(plain, pastInputs[0]!);
  const rowBytes = pastInputs.length * kvHeads * D * 4;
  console.log(`\n### Speed: ${m.name} (${pastInputs.length / 2} layers, ${kvHeads} KV heads of width ${D}), real text, ${THREADS} intra-op thread(s), budget 12.5%, load average ${loadavg().map((l) => l.toFixed(1)).join(" ")}`);
  console.log(`positions past 512 are beyond what ${m.name} was trained on (extrapolation)\n`);
  console.log("| context | method | decode tok/s (wall) | tok/CPU-s | vs dense (CPU) | vs plain (CPU) | vs dense (wall) | KV bytes | KV vs dense |");
  console.log("|---|---|---|---|---|---|---|---|---|");
  for (const context of contexts) {
    const past = await prefill(plain, pastInputs, text.slice(0, context));
    const ids = (values: number[]) => new ort.Tensor("int64", BigInt64Array.from(values, BigInt), [1, values.length]);
    const feedsFor = () => ({ input_ids: ids([text[context]!]), attention_mask: ids(new Array(context + 1).fill(1)), position_ids: ids([context]), ...past });
    const costs = await stepCosts(feedsFor, variants, context);
    const hitRate = await measuredHitRate(cachePath, feedsFor(), context, HIT_RATE_STEPS, (step) => text[context + step + 1]!);
    printSpeedRows(context, variants, costs, hitRate, rowBytes);
  }
  await plain.release();
}

/** KV heads and head width of a past input [B, Hkv, P, D]. */
function pastDims(session: ort.InferenceSession, name: string): { kvHeads: number; D: number } {
  const meta = session.inputMetadata.find((i) => i.name === name)!;
  const [, kvHeads, , D] = meta.isTensor ? meta.shape : [];
  if (typeof kvHeads !== "number" || typeof D !== "number") throw new Error(`${name}: KV heads and head width are not fixed`);
  return { kvHeads, D };
}

/** The exported model's KV cache after `tokens`, prefilled in chunks of 512: the past feeds of the next step. */
async function prefill(session: ort.InferenceSession, pastInputs: string[], tokens: number[]): Promise<Record<string, ort.Tensor>> {
  const { kvHeads, D } = pastDims(session, pastInputs[0]!);
  let past: Record<string, ort.Tensor> = Object.fromEntries(pastInputs.map((n) => [n, new ort.Tensor("float32", new Float32Array(0), [1, kvHeads, 0, D])]));
  for (let start = 0; start < tokens.length; start += 512) {
    const chunk = tokens.slice(start, start + 512);
    const ids = (values: number[]) => new ort.Tensor("int64", BigInt64Array.from(values, BigInt), [1, values.length]);
    const out = await session.run({
      input_ids: ids(chunk),
      attention_mask: ids(new Array(start + chunk.length).fill(1)),
      position_ids: ids(chunk.map((_, i) => start + i)),
      ...past,
    });
    past = Object.fromEntries(pastInputs.map((n) => [n, out[n.replace("past_key_values.", "present.")]!]));
  }
  return past;
}

/** Real consecutive decode steps over which the zoo model's selection-cache hit rate is measured. */
const HIT_RATE_STEPS = 17;

/**
 * One decode step of a speed variant under onnxruntime's profiler (enableProfiling): per op type,
 * the sum over nodes of each node's fastest time over the profiled steps (the first two skipped),
 * so load from other processes mostly drops out; the sum of all nodes is the step's own work.
 */
async function profile(): Promise<void> {
  const method = option("--method", "tokenselect");
  const heads = Number(option("--heads", "4"));
  const context = Number(option("--context", "8192"));
  const config = SPEED_CONFIGS.find((c) => c.heads === heads);
  if (!config || !["dense", "streaming", "tidal", "tokenselect"].includes(method)) throw new Error(`--method dense|streaming|tidal|tokenselect and --heads ${SPEED_CONFIGS.map((c) => c.heads).join("|")}`);
  const model = buildZooModel(config);
  // Streaming as its speed row runs it: the append-only model at its bounded cache.
  const streaming = method === "streaming";
  const path = save(streaming ? streamingAppendOnly(model) : appendOnly(method === "dense" ? model : sparsify(model, method as Method, "12.5%")), `profile-${method}-${heads}`);
  const session = await ort.InferenceSession.create(path, { intraOpNumThreads: THREADS, enableProfiling: true, profileFilePrefix: join(SCRATCH, "profile") });
  const feeds = decodeFeeds(config, streaming ? Math.min(context, STREAMING_CACHE) : context);
  for (let i = 0; i < 12; i++) await session.run(feeds, ["logits"]);
  session.endProfiling();
  await session.release();
  const file = readdirSync(SCRATCH).find((f) => f.startsWith("profile") && f.endsWith(".json"))!;
  type Event = { cat: string; name: string; ts: number; dur: number; args?: { op_name?: string } };
  const events = JSON.parse(readFileSync(join(SCRATCH, file), "utf8")) as Event[];
  const fastest = new Map<string, { op: string; us: number }>();
  for (const run of events.filter((e) => e.name === "model_run").slice(2)) {
    const inRun = new Map<string, { op: string; us: number }>();
    for (const e of events) {
      if (e.cat !== "Node" || !e.name.endsWith("_kernel_time") || e.ts < run.ts || e.ts > run.ts + run.dur) continue;
      const seen = inRun.get(e.name);
      inRun.set(e.name, { op: e.args?.op_name ?? "?", us: (seen?.us ?? 0) + e.dur });
    }
    for (const [name, t] of inRun) if (t.us < (fastest.get(name)?.us ?? Infinity)) fastest.set(name, t);
  }
  const byOp = new Map<string, number>();
  for (const { op, us } of fastest.values()) byOp.set(op, (byOp.get(op) ?? 0) + us);
  const total = [...byOp.values()].reduce((a, b) => a + b, 0);
  console.log(`\n### Profile: ${method}, zoo ${config.layers} layers x ${heads} heads, context ${context}, ${THREADS} thread(s), load average ${loadavg().map((l) => l.toFixed(1)).join(" ")}: ${(total / 1000).toFixed(1)} ms of node time\n`);
  console.log("| op | ms (sum of each node's fastest) |\n|---|---|");
  for (const [op, us] of [...byOp].sort((a, b) => b[1] - a[1])) if (us >= 50) console.log(`| ${op} | ${(us / 1000).toFixed(2)} |`);
}

try {
  console.log(`command: npx tsx bench/sparse-attention.ts${args.length ? ` ${args.join(" ")}` : ""}`);
  if (PART === "quality" || PART === "all") await quality();
  if (PART === "speed" || PART === "all" || PART === "trained-speed") await speed(PART !== "trained-speed");
  if (PART === "profile") await profile();
} finally {
  rmSync(SCRATCH, { recursive: true, force: true });
}
