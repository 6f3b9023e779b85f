// The models the sparse-attention oracles run on: MHA and GQA decoders whose attention is
// decomposed or the standard Attention op (the oracle reads each layer's Q, K, V from the
// unrewritten model, so they must be values of it), and what the oracle tests share: running a
// rewritten copy, comparing it, feeding an append-only buffer. Matrix fixtures join the list by
// name; a listed one that is absent is skipped with a reason.
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import * as ort from "onnxruntime-node";
import { expect } from "vitest";
import type { Model } from "../../graph/ir/model.ts";
import { loadModel } from "../../graph/onnx/index.ts";
import { buildZooModel, gpt2Config, llamaConfig } from "../../graph/zoo/index.ts";
import { maxDiff, type AttentionOracle, type OracleLayer, type OracleRun, type Policy, exposeAttentionOutputs } from "./attention-oracle.ts";
import { rng } from "./ort-inputs.ts";
import { modelBytes } from "./ort-parity.ts";
import { sparsify } from "./sparse-parity.ts";

export interface OracleCase {
  name: string;
  /** The model's query heads share KV heads (the attention may still see K repeated to H heads). */
  gqa: boolean;
  /** Decoder layers (the layer-role methods need some). */
  layers: number;
  /** Rotary positions (rotate-half, base theta, on the first `dims` lanes of each head); undefined: learned absolute positions. */
  rotary?: { theta: number; dims: number };
  /** Why the case cannot run here (a matrix fixture not present), or undefined. */
  skip?: string;
  load(): Model | Promise<Model>;
}

const REFERENCE_DIR = resolve(import.meta.dirname, "../fixtures/reference");
/** transformers' default rotary base, over the whole 16-lane head of the reference exports. */
const ROTARY = { theta: 10000, dims: 16 };

/** The export matrix's fixtures (test/fixtures/export-matrix/<name>/model.onnx), when present. */
const MATRIX_DIR = resolve(import.meta.dirname, "../fixtures/export-matrix");
/**
 * Matrix fixtures to run the oracles on: ones whose Q, K, V are values of the model (decomposed
 * attention, or the standard Attention op; a fused com.microsoft op hides them) and whose decode
 * step sees every key (not Gemma 2's sliding window). Their sizes and rotary come from expected.json.
 */
const MATRIX_MODELS = [
  "gpt2-eager-torchscript-opset17",
  // Partial rotary: a quarter of the head.
  "gpt_neox-eager-dynamo-opset20",
  "llama-eager-dynamo-opset20",
  "mistral-eager-torchscript-opset17",
  "qwen2-eager-dynamo-opset23",
  "qwen3-eager-dynamo-opset20",
  "phi3-eager-torchscript-opset17",
  // The standard Attention op, K repeated to H heads before it: lifted as MHA, its cache Concat unseen.
  "llama-sdpa-dynamo-opset23",
];

function reference(dir: string, gqa: boolean): OracleCase {
  return { name: `reference ${dir}`, gqa, layers: 2, rotary: dir.startsWith("gpt2") ? undefined : ROTARY, load: () => loadModel(resolve(REFERENCE_DIR, dir, "model.onnx")) };
}

/** An export-matrix fixture as an oracle case (skipped with the reason when the matrix is absent). */
export function matrix(dir: string): OracleCase {
  const path = resolve(MATRIX_DIR, dir, "model.onnx");
  if (!existsSync(path)) return { name: `matrix ${dir}`, gqa: false, layers: 0, skip: `${path} not found (the export matrix is not generated here)`, load: () => loadModel(path) };
  const { config } = JSON.parse(readFileSync(resolve(MATRIX_DIR, dir, "expected.json"), "utf8")) as { config: MatrixConfig };
  const rotary = config.rotary ? { theta: config.rotary.theta, dims: Math.round(config.rotary.fraction * config.head_dim) } : undefined;
  return { name: `matrix ${dir}`, gqa: config.kv_heads < config.heads, layers: config.layers, rotary, load: () => loadModel(path) };
}

/** What the oracles read of a matrix fixture's expected.json. */
interface MatrixConfig {
  layers: number;
  heads: number;
  kv_heads: number;
  head_dim: number;
  rotary: { kind: "rotate_half"; fraction: number; theta: number } | null;
}

/** Reference exports (GPT-2: MHA; Llama, Qwen2: 4 query heads on 2 KV heads), 5-layer zoo decoders, the matrix's. */
export function oracleCases(): OracleCase[] {
  return [
    reference("gpt2-torchscript", false),
    reference("gpt2-dynamo", false),
    reference("llama-dynamo", true),
    reference("llama-torchscript", true),
    reference("qwen2-torchscript", true),
    reference("qwen2-dynamo", true),
    { name: "zoo llama (GQA, 5 layers)", gqa: true, layers: 5, rotary: { theta: llamaConfig().ropeTheta, dims: 16 }, load: () => buildZooModel(llamaConfig({ layers: 5 })) },
    { name: "zoo gpt2 (MHA, 5 layers)", gqa: false, layers: 5, load: () => buildZooModel(gpt2Config({ layers: 5 })) },
    ...MATRIX_MODELS.map(matrix),
  ];
}

/** What the rewritten graph computed in one step: its logits and each layer's attention output [H*D]. */
export interface RewrittenRun {
  logits: Float32Array;
  attention: Float32Array[];
}

/** Lifts, rewrites with `pass` and lowers a fresh copy, then runs it on `feeds` (any extra inputs from `extraFeeds`). */
export async function runRewritten(
  c: OracleCase,
  layers: readonly OracleLayer[],
  pass: (m: Model) => number,
  feeds: Record<string, ort.Tensor>,
  extraFeeds: (session: ort.InferenceSession) => Record<string, ort.Tensor> = () => ({}),
): Promise<RewrittenRun & { rewritten: number; outputs: Record<string, ort.Tensor> }> {
  const model = await c.load();
  const { rewritten } = sparsify(model, pass);
  const names = exposeAttentionOutputs(model, layers);
  const session = await ort.InferenceSession.create(modelBytes(model));
  try {
    const outputs = await session.run({ ...feeds, ...extraFeeds(session) });
    return { rewritten, outputs, logits: outputs.logits!.data as Float32Array, attention: names.map((n) => outputs[n]!.data as Float32Array) };
  } finally {
    await session.release();
  }
}

/** Within float32 rounding of the same attention (measured ~5e-6 on the logits for dense replays). */
export const AGREE = 5e-5;
/** A selection must change the step by far more than rounding, or the comparison proves nothing. */
export const MATTERS = 1e-3;

/** Largest difference per layer and in the logits between the oracle and the rewritten graph. */
export function agreement(oracle: OracleRun, rewritten: RewrittenRun): { layers: number[]; logits: number } {
  return { layers: oracle.attention.map((a, l) => maxDiff(a, rewritten.attention[l]!)), logits: maxDiff(oracle.logits, rewritten.logits) };
}

/** The rewritten graph attends what the oracle chose: every layer's attention output and the logits within AGREE. */
export function expectAgreement(oracle: OracleRun, rewritten: RewrittenRun): void {
  const got = agreement(oracle, rewritten);
  for (const d of got.layers) expect(d).toBeLessThanOrEqual(AGREE);
  expect(got.logits).toBeLessThanOrEqual(AGREE);
}

/**
 * On a GQA model, the same selection scored against the wrong KV head (`wrong`: h mod Hkv, the
 * SGLang layout) attends other keys and is told apart from the graph's: a query-to-KV-head
 * mapping bug cannot pass. Nothing to check on MHA.
 */
export async function expectWrongKvHeadCaught(oracle: AttentionOracle, feeds: Record<string, ort.Tensor>, wrong: Policy, want: OracleRun, rewritten: RewrittenRun): Promise<void> {
  if (!oracle.layers.some((l) => l.heads > l.kvHeads)) return;
  const run = await oracle.run(feeds, wrong);
  expect(run.attended).not.toEqual(want.attended);
  expect(maxDiff(run.logits, rewritten.logits)).toBeGreaterThan(MATTERS);
}

/**
 * A decode step's feeds as an append-only cache holds them: each past buffer has `spare` rows of
 * noise after its P rows, which the attention mask hides (a buffer reserved ahead). Any method
 * must give the step it gives on `feeds`: spare rows are neither context nor candidates.
 */
export function bufferedFeeds(feeds: Record<string, ort.Tensor>, spare: number, seed: number): Record<string, ort.Tensor> {
  const next = rng(seed);
  const out: Record<string, ort.Tensor> = { ...feeds };
  let past = 0;
  for (const [name, t] of Object.entries(feeds)) {
    if (!/past/.test(name)) continue;
    const [B, H, P, D] = t.dims as number[];
    past = P!;
    const data = Float32Array.from({ length: B! * H! * (P! + spare) * D! }, () => next() * 4 - 2);
    for (let o = 0; o < B! * H!; o++) data.set((t.data as Float32Array).subarray(o * P! * D!, (o + 1) * P! * D!), o * (P! + spare) * D!);
    out[name] = new ort.Tensor("float32", data, [B!, H!, P! + spare, D!]);
  }
  const mask = new BigInt64Array(past + spare + 1).fill(1n);
  mask.fill(0n, past, past + spare);
  out.attention_mask = new ort.Tensor("int64", mask, [1, mask.length]);
  return out;
}
