import { readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { isPipecError } from "../../graph/errors.ts";
import type { Model } from "../../graph/ir/model.ts";
import { loadModel } from "../../graph/onnx/index.ts";
import { buildZooModel, gpt2Config, llamaConfig } from "../../graph/zoo/index.ts";
import { HAVE_SHARED, SHARED_FIXTURES, SKIP_SHARED_REASON } from "../../test/helpers/fixtures.ts";
import { modelBytes } from "../../test/helpers/ort-parity.ts";
import { liftAttention } from "../attention/lift.ts";
import { lowerAttention } from "../attention/lower.ts";
import { createTreeAttentionMask } from "./tree-attention-mask.ts";

const CONTEXT = [1, 7, 3];
/**
 * A token tree after the context, in breadth-first order: parent index (-1 = the context's next
 * token, the root). Node 2 is node 1's sibling; node 4 hangs under node 2.
 */
const DEFAULT_TREE = { tokens: [4, 9, 6, 11, 5], parents: [-1, 0, 0, 1, 2] };

type Outputs = Record<string, ort.Tensor>;

/** Drives one session: feeds past from the previous step's present, and whatever the step adds. */
class Stepper {
  private past: Outputs = {};

  constructor(private readonly session: ort.InferenceSession) {}

  async step(tokens: number[], positions: number[], extra: Outputs = {}): Promise<Outputs> {
    const pastLength = this.pastLength();
    const feeds: Outputs = { ...extra };
    for (const meta of this.session.inputMetadata) {
      if (!meta.isTensor || meta.name in feeds) continue;
      const ints = (values: number[]) =>
        meta.type === "int32" ? new ort.Tensor("int32", Int32Array.from(values), [1, values.length]) : new ort.Tensor("int64", BigInt64Array.from(values, BigInt), [1, values.length]);
      if (meta.name === "input_ids") feeds[meta.name] = ints(tokens);
      else if (meta.name === "position_ids") feeds[meta.name] = ints(positions);
      else if (/mask/.test(meta.name)) feeds[meta.name] = ints(Array(pastLength + tokens.length).fill(1));
      else if (/past/.test(meta.name)) feeds[meta.name] = this.past[meta.name] ?? emptyPast(meta);
      else throw new Error(`no feed for ${meta.name}`);
    }
    const out = await this.session.run(feeds);
    for (const meta of this.session.inputMetadata) if (/past/.test(meta.name)) this.past[meta.name] = out[presentName(meta.name)]!;
    return out;
  }

  private pastLength(): number {
    const first = Object.values(this.past)[0];
    if (!first) return 0;
    return first.dims.length === 5 ? first.dims[3]! : first.dims[2]!; // [2, B, H, P, D] or [B, H, P, D]
  }
}

function emptyPast(meta: ort.InferenceSession.ValueMetadata & { isTensor: true }): ort.Tensor {
  let symbolic = 0;
  const dims = meta.shape.map((d) => (typeof d === "number" ? d : symbolic++ === 0 ? 1 : 0));
  return new ort.Tensor(meta.type as "float32", meta.type === "float16" ? new Uint16Array(0) : new Float32Array(0), dims);
}

function presentName(past: string): string {
  return past.replace("past_key_values", "present").replace(/^past/, "present");
}

/** Additive [1, 1, S, past + S]: every node sees the context and its ancestors (itself included). */
function treeMask(pastLength: number, parents: number[]): ort.Tensor {
  const S = parents.length;
  const N = pastLength + S;
  const data = new Float32Array(S * N).fill(-Infinity);
  parents.forEach((_, i) => {
    data.fill(0, i * N, i * N + pastLength);
    for (let a = i; a >= 0; a = parents[a]!) data[i * N + pastLength + a] = 0;
  });
  return new ort.Tensor("float32", data, [1, 1, S, N]);
}

const chain = (S: number) => Array.from({ length: S }, (_, i) => i - 1);
const depths = (parents: number[]) => parents.map(function depth(p: number): number { return p < 0 ? 0 : 1 + depth(parents[p]!); });
const pathTo = (parents: number[], i: number): number[] => (i < 0 ? [] : [...pathTo(parents, parents[i]!), i]);

function floats(t: ort.Tensor): Float32Array {
  if (t.type !== "float16") return t.data as Float32Array;
  return Float32Array.from(t.data as Uint16Array, (h) => {
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    const v = e === 0 ? m * 2 ** -24 : e === 31 ? (m ? NaN : Infinity) : (1 + m / 1024) * 2 ** (e - 15);
    return h & 0x8000 ? -v : v;
  });
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

const open = (model: Model) => ort.InferenceSession.create(modelBytes(model));

/**
 * Rewrites `load()` (lift, tree mask, lower) and checks, against onnxruntime on the original:
 * a causal chain mask reproduces a prefill's every output; a tree step after that prefill gives,
 * at each node, the logits the original gives at the end of the context plus that node's path.
 */
async function expectTreeVerification(load: () => Model, layers: number, tolerance: number, rotaryGathersRewired = 0, { tree: tokenTree = DEFAULT_TREE, rotaryCachesPadded = 0 } = {}): Promise<void> {
  const original = await open(load());
  const model = load();
  liftAttention(model);
  const result = createTreeAttentionMask().run(model, { options: {}, note: () => {} });
  expect(result.stats).toEqual({ "masks-replaced": layers, "rotary-positions-rewired": rotaryGathersRewired, "rotary-caches-padded": rotaryCachesPadded });
  // Nothing reads attention_mask once every attention reads the tree mask: the input is dropped.
  expect(load().graph.lookup("attention_mask")?.isGraphInput).toBe(true);
  expect(model.graph.inputs.map((v) => v.name)).not.toContain("attention_mask");
  lowerAttention(model);
  const rewritten = await open(model);
  try {
    const positions = CONTEXT.map((_, i) => i);
    const ordinary = await new Stepper(original).step(CONTEXT, positions);
    const tree = new Stepper(rewritten);
    const chained = await tree.step(CONTEXT, positions, { tree_attention_mask: treeMask(0, chain(CONTEXT.length)) });
    for (const [name, t] of Object.entries(ordinary)) expect(maxDiff(floats(chained[name]!), floats(t)), name).toBeLessThanOrEqual(tolerance);

    const P = CONTEXT.length;
    const treeLogits = floats((await tree.step(tokenTree.tokens, depths(tokenTree.parents).map((d) => P + d), { tree_attention_mask: treeMask(P, tokenTree.parents) })).logits!);
    const V = treeLogits.length / tokenTree.tokens.length;
    for (let i = 0; i < tokenTree.tokens.length; i++) {
      const sequence = [...CONTEXT, ...pathTo(tokenTree.parents, i).map((j) => tokenTree.tokens[j]!)];
      const full = floats((await new Stepper(original).step(sequence, sequence.map((_, j) => j))).logits!);
      expect(maxDiff(treeLogits.subarray(i * V, (i + 1) * V), full.subarray(full.length - V)), `tree node ${i}`).toBeLessThanOrEqual(tolerance);
    }
  } finally {
    await Promise.all([original.release(), rewritten.release()]);
  }
}

describe("tree-attention-mask on the zoo", () => {
  const configs = { llama: llamaConfig({ layers: 2 }), "llama interleaved, MQA": llamaConfig({ layers: 2, rotary: "interleaved", kvHeads: 1 }), gpt2: gpt2Config({ layers: 2 }) };
  for (const [name, config] of Object.entries(configs)) {
    for (const encoding of ["decomposed", "ms", "standard"] as const) {
      it(`${name}, ${encoding}: a chain mask reproduces the prefill, a tree step each path`, async () => {
        // GroupQueryAttention rotates inside the op at seqlens positions: one cos and one sin Gather per layer to rewire.
        const rewired = encoding === "ms" && config.family === "llama" ? 2 * config.layers : 0;
        await expectTreeVerification(() => buildZooModel(config, { encoding }), config.layers, 1e-5, rewired);
      });
    }
  }

  it("refuses a model without canonical attention", () => {
    let error: unknown;
    try {
      createTreeAttentionMask().run(buildZooModel(llamaConfig()), { options: {}, note: () => {} });
    } catch (e) {
      error = e;
    }
    expect(isPipecError(error)).toBe(true);
  });
});

describe("tree-attention-mask on the reference exports", () => {
  const root = resolve(import.meta.dirname, "../../test/fixtures/reference");
  for (const dir of readdirSync(root).filter((d) => !d.includes("."))) {
    it(dir, async () => {
      const load = () => loadModel(join(root, dir, "model.onnx"));
      const layers = liftAttention(load()).rewrites;
      expect(layers).toBeGreaterThan(0);
      await expectTreeVerification(load, layers, 1e-4);
    });
  }
});

describe.skipIf(!HAVE_SHARED)(`tree-attention-mask on the shared fixtures${HAVE_SHARED ? "" : ` (${SKIP_SHARED_REASON})`}`, () => {
  it("gpt2 fp32 (com.microsoft Attention, combined past)", async () => {
    await expectTreeVerification(() => loadModel(join(SHARED_FIXTURES, "genai-tiny-random-gpt2-fp32/past.onnx")), 5, 1e-4);
  });
  it("gpt2 fp16 (the float32 mask input is cast to the model's float16)", async () => {
    await expectTreeVerification(() => loadModel(join(SHARED_FIXTURES, "genai-tiny-random-gpt2-fp16/past.onnx")), 5, 2e-2);
  });
  it("qwen35 (GroupQueryAttention with a seqlens mask, no rotary, no position_ids)", async () => {
    await expectTreeVerification(() => loadModel(join(SHARED_FIXTURES, "genai-tiny-qwen35/decoder.onnx")), 2, 2e-2);
  });
});

// optimize_for_ort computes the cos/sin caches for positions 0..max(position_ids) only: a wide
// tree (7 tokens at 2 distinct positions after a 3-token context) is longer than its positions.
describe("tree-attention-mask on caches computed up to the largest position", () => {
  const WIDE_TREE = { tokens: [4, 9, 6, 11, 5, 8, 2], parents: [-1, 0, 0, 0, 0, 0, 0] };
  const matrix = (name: string) => () => loadModel(resolve(import.meta.dirname, "../../test/fixtures/export-matrix", name, "model.onnx"));
  it("gpt_neox-sdpa-dynamo-opset20-optimize-for-ort: com.microsoft.RotaryEmbedding's caches are padded to the step (onnxruntime requires it)", async () => {
    await expectTreeVerification(matrix("gpt_neox-sdpa-dynamo-opset20-optimize-for-ort"), 2, 1e-4, 0, { tree: WIDE_TREE, rotaryCachesPadded: 2 });
  });
  it("llama-sdpa-dynamo-opset20-optimize-for-ort: GroupQueryAttention's lifted rotary gathers the computed caches at position_ids, not at chain positions past them", async () => {
    await expectTreeVerification(matrix("llama-sdpa-dynamo-opset20-optimize-for-ort"), 2, 1e-4, 4, { tree: WIDE_TREE });
  });
});
