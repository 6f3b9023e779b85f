// KV policies on real models: a per-head gather continues exactly as onnxruntime fed each
// head's kept rows (both cache designs), and a policy given to the Generator runs at the
// generation loop's points: StreamingLLM's eviction written as a per-head policy decodes the
// tokens the built-in one does.
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { buildZooModel, llamaConfig } from "../graph/zoo/index.ts";
import { loadModel, saveModel } from "../graph/onnx/index.ts";
import { createKvAppendOnly } from "../passes/kv/kv-append-only.ts";
import { createStreamingLlm } from "../passes/kv/streaming-llm.ts";
import type { KvPolicy, KvPolicyHost, RowsChange, RunShape } from "../runtime/cache/kv-policy.ts";
import { DecoderModel } from "../runtime/decoder.ts";
import { Generator } from "../runtime/generate.ts";
import { streamingKeep, streamingRows, type StreamingConfig } from "../runtime/kv-policies/streaming.ts";
import { REFERENCE_DIR } from "./helpers/runtime-models.ts";
import { floatData, intTensor, readFloatRow } from "../runtime/tensors.ts";
import { sparsify } from "./helpers/sparse-parity.ts";
import { tempDir } from "./helpers/tmp.ts";

const SOURCE = join(REFERENCE_DIR, "llama-dynamo/model.onnx");

function lastRow(logits: ort.Tensor): Float32Array {
  const V = logits.dims[2]!;
  const row = new Float32Array(V);
  readFloatRow(floatData(logits), (logits.dims[1]! - 1) * V, row);
  return row;
}

const maxDiff = (a: Float32Array, b: Float32Array) => Math.max(...a.map((x, i) => Math.abs(x - b[i]!)));

describe("per-head gather on the llama reference export", () => {
  const dir = tempDir("pipec-kv-policy-");
  const appendPath = join(dir, "append.onnx");
  const tokens = [3, 14, 15, 92, 65, 35, 89, 79];
  const next = 32;
  // 2 layers x 2 KV heads, each keeping its own 5 of the 8 rows in its own order.
  const indices = [
    [[0, 1, 4, 6, 7], [7, 0, 2, 3, 5]],
    [[0, 2, 3, 5, 7], [1, 4, 6, 7, 0]],
  ];

  for (const kind of ["present", "append"] as const) {
    it(`${kind} cache: the next step equals onnxruntime fed each head's kept rows, at the position the sequence kept`, async () => {
      if (kind === "append") {
        const model = loadModel(SOURCE);
        expect(createKvAppendOnly().run(model, { options: {}, note: () => {} }).changed).toBe(true);
        saveModel(model, appendPath);
      }
      const model = await DecoderModel.open(kind === "append" ? appendPath : SOURCE, { device: "cpu", threads: 1 });
      const raw = await ort.InferenceSession.create(SOURCE, { intraOpNumThreads: 1 });
      try {
        expect(model.contract.kvMode).toBe(kind);
        const full = model.newSequence();
        await full.forward(tokens);
        const { idsType, maskType, positionType } = model.contract;
        const k = indices[0]![0]!.length;
        const feeds: Record<string, ort.Tensor> = {
          input_ids: intTensor(idsType, [next], [1, 1]),
          attention_mask: intTensor(maskType!, Array(k + 1).fill(1), [1, k + 1]),
          position_ids: intTensor(positionType!, [tokens.length], [1, 1]),
        };
        model.contract.kv.forEach((slot, s) => {
          const [, Hkv, , D] = slot.dims; // [B, Hkv, P, D]
          const heads = indices[full.cache.layers.findIndex((l) => l.layer === slot.layer)]!;
          const data = new Float32Array(Hkv! * k * D!);
          for (let h = 0; h < Hkv!; h++) heads[h]!.forEach((row, j) => data.set(full.cache.row(s, row).subarray(h * D!, (h + 1) * D!), (h * k + j) * D!));
          feeds[slot.input] = new ort.Tensor("float32", data, [1, Hkv!, k, D!]);
        });
        const expected = lastRow((await raw.run(feeds)).logits!);

        const sequence = model.newSequence();
        await sequence.forward(tokens);
        sequence.gatherPerHead(indices);
        expect(sequence.length).toBe(k);
        expect(sequence.position).toBe(tokens.length);
        expect(maxDiff(lastRow(await sequence.forward([next])), expected)).toBeLessThanOrEqual(1e-5);

        // The heads' own rows matter: one head's list for every head is a different input.
        const shared = model.newSequence();
        await shared.forward(tokens);
        shared.gather(indices[0]![0]!, tokens.length);
        expect(maxDiff(lastRow(await shared.forward([next])), expected)).toBeGreaterThan(1e-3);
      } finally {
        await model.release();
        await raw.release();
      }
    });
  }
});

/** StreamingLLM's eviction as a per-head policy: every head keeps the sinks and the window. */
class PerHeadStreaming implements KvPolicy {
  readonly changes: RowsChange["kind"][] = [];

  constructor(private readonly config: StreamingConfig) {}

  reserveRows({ prompt, chunk, maxTokens }: RunShape): number {
    return streamingRows(prompt, chunk, maxTokens, this.config);
  }

  afterPromptChunk(host: KvPolicyHost): void {
    this.evict(host);
  }

  afterDecodeStep(host: KvPolicyHost): void {
    this.evict(host);
  }

  onRowsChanged(change: RowsChange): void {
    this.changes.push(change.kind);
  }

  private evict(host: KvPolicyHost): void {
    const keep = streamingKeep(host.length, this.config);
    if (keep) host.gatherPerHead(host.cache.layers.map((l) => Array.from({ length: l.heads }, () => keep)), keep.length);
  }
}

describe("a KV policy given to the Generator", () => {
  const dir = tempDir("pipec-kv-policy-streaming-");
  const streaming = { sinks: 4, window: 12 };
  const prompt = [7, 101, 33, 250, 12, 90, 4, 8, 15, 16, 23, 42, 5, 6, 7, 9, 11, 13, 17, 19];

  for (const appendOnly of [false, true]) {
    it(`StreamingLLM's eviction written per head decodes the built-in policy's tokens${appendOnly ? " (append-only cache)" : ""}`, async () => {
      const graph = buildZooModel(llamaConfig({ layers: 2, maxPositions: 64 }), { encoding: "decomposed" });
      const pass = createStreamingLlm({ ...streaming, appendOnly });
      sparsify(graph, (m) => pass.run(m, { options: {}, note: () => {} }).stats!["layers"]!);
      const path = join(dir, `streaming-${appendOnly}.onnx`);
      saveModel(graph, path);
      const model = await DecoderModel.open(path, { device: "cpu", threads: 1 });
      try {
        expect(model.contract.kvMode).toBe(appendOnly ? "append" : "present");
        const generator = new Generator(model);
        const options = { maxTokens: 80, eosTokenIds: [], prefillChunkSize: 8 };
        const builtIn = await generator.run(prompt, { ...options, streaming });
        let policy: PerHeadStreaming | undefined;
        const perHead = await generator.run(prompt, { ...options, kvPolicies: [() => (policy = new PerHeadStreaming(streaming))] });
        expect(perHead.tokens).toEqual(builtIn.tokens);
        expect(perHead.stats.peakKvBytes).toBe(builtIn.stats.peakKvBytes);
        // The third prompt chunk (20 rows > 16) and each of the 79 decode steps evicted.
        expect(policy!.changes.length).toBe(1 + 79);
        expect(new Set(policy!.changes)).toEqual(new Set(["gather-per-head"]));
      } finally {
        await model.release();
      }
    });
  }
});
