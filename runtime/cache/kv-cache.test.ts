// KV cache edits checked against recomputation: after a rollback or a gather, the next
// logits must equal those of a fresh run over the tokens the cache now stands for.
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DecoderModel } from "../decoder.ts";
import { isRuntimeError } from "../errors.ts";
import { HAVE_SHARED, lastLogitsFromScratch, NO_SHARED, REFERENCE_DIR, SHARED_DECODERS } from "../../test/helpers/runtime-models.ts";
import type { KvSlot } from "../contract.ts";
import { floatData, halfToFloat, readFloatRow } from "../tensors.ts";
import { AppendKvCache } from "./append-kv-cache.ts";
import type { KvCache } from "./kv-cache.ts";
import { PresentKvCache } from "./present-kv-cache.ts";

const A = [3, 14, 15, 92, 65];
const B = [35, 89, 79];
const C = [32, 38];

function lastRow(logits: ort.Tensor): Float32Array {
  const V = logits.dims[2];
  const row = new Float32Array(V);
  readFloatRow(floatData(logits), (logits.dims[1] - 1) * V, row);
  return row;
}

function expectClose(actual: Float32Array, expected: Float64Array, tolerance: number): void {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
  expect(worst).toBeLessThan(tolerance);
}

function cacheSuite(label: string, path: () => string, tolerance: number, layers: number, rowBytes: number) {
  describe(label, () => {
    let model: DecoderModel;
    let scratch: ort.InferenceSession;
    beforeAll(async () => {
      model = await DecoderModel.open(path(), { device: "cpu", threads: 1 });
      scratch = await ort.InferenceSession.create(path(), { intraOpNumThreads: 1 });
    });
    afterAll(async () => {
      await model?.release();
      await scratch?.release();
    });

    it("rollback: truncate, then decode, equals a fresh run without the dropped tokens", async () => {
      const seq = model.newSequence();
      await seq.forward([...A, ...B]);
      seq.truncate(A.length);
      expect(seq.length).toBe(A.length);
      const logits = await seq.forward(C);
      expectClose(lastRow(logits), await lastLogitsFromScratch(scratch, [...A, ...C]), tolerance);
    });

    it("rollback one token at a time (speculative rejection) keeps positions right", async () => {
      const seq = model.newSequence();
      await seq.forward(A);
      for (const t of B) await seq.forward([t]);
      seq.truncate(A.length + 1);
      const logits = await seq.forward([C[0]]);
      expectClose(lastRow(logits), await lastLogitsFromScratch(scratch, [...A, B[0], C[0]]), tolerance);
    });

    it("gather of a prefix equals truncate; gather moves rows exactly", async () => {
      const seq = model.newSequence();
      await seq.forward([...A, ...B]);
      const before = [5, 0, 3].map((i) => seq.cache.row(1, i));
      seq.gather([5, 0, 3]);
      expect(seq.length).toBe(3);
      before.forEach((row, j) => expect(seq.cache.row(1, j)).toEqual(row));

      const prefix = model.newSequence();
      await prefix.forward([...A, ...B]);
      prefix.gather(A.map((_, i) => i));
      const logits = await prefix.forward(C);
      expectClose(lastRow(logits), await lastLogitsFromScratch(scratch, [...A, ...C]), tolerance);
    });

    it("reports its bytes: layers x rows x row size, and the peak", async () => {
      const seq = model.newSequence();
      await seq.forward([...A, ...B]);
      expect(seq.cache.bytes).toBe(layers * (A.length + B.length) * rowBytes);
      seq.truncate(2);
      expect(seq.cache.bytes).toBe(layers * 2 * rowBytes);
      expect(seq.cache.peakBytes).toBe(layers * (A.length + B.length) * rowBytes);
    });

    it("rejects rows outside the cache", async () => {
      const seq = model.newSequence();
      await seq.forward(A);
      expect(() => seq.truncate(A.length + 1)).toThrow(RangeError);
      expect(() => seq.gather([A.length])).toThrow(RangeError);
    });
  });
}

// Llama (Optimum split layout, GQA 2 KV heads x D 16, 2 layers): per layer K and V rows of 2*16 floats.
cacheSuite("Optimum layout (llama reference export)", () => join(REFERENCE_DIR, "llama-torchscript/model.onnx"), 1e-4, 2, 2 * 2 * 16 * 4);

describe.skipIf(!HAVE_SHARED)(`shared fixture layouts ${HAVE_SHARED ? "" : NO_SHARED}`, () => {
  // Stacked [2,B,H,P,D] layout, 5 layers, H 4, D 8: one slot holds K and V.
  cacheSuite("genai GPT-2 combined past_{i}", () => SHARED_DECODERS.gpt2Fp32, 1e-4, 5, 2 * 4 * 8 * 4);
  // GroupQueryAttention, float16 cache: 2 layers x (K,V) x 2 heads x 16 x 2 bytes; fp16 logits.
  cacheSuite("GQA float16 (qwen35)", () => SHARED_DECODERS.qwen35, 2e-2, 2, 2 * 2 * 16 * 2);

  it("a model with recurrent state refuses to roll back, with one clear error", async () => {
    const model = await DecoderModel.open(SHARED_DECODERS.lfm2, { device: "cpu", threads: 1 });
    try {
      const seq = model.newSequence();
      await seq.forward(A);
      let error: unknown;
      try {
        seq.truncate(2);
      } catch (e) {
        error = e;
      }
      expect(isRuntimeError(error) && error.code).toBe("cannot-rollback");
    } finally {
      await model.release();
    }
  });
});

describe("KV selection keeps counting positions", () => {
  it("gather that evicts a middle row, with the next position kept, equals onnxruntime fed those rows", async () => {
    const path = join(REFERENCE_DIR, "llama-torchscript/model.onnx");
    const model = await DecoderModel.open(path, { device: "cpu", threads: 1 });
    const raw = await ort.InferenceSession.create(path, { intraOpNumThreads: 1 });
    try {
      const tokens = [...A, ...B];
      const keep = [0, 1, 2, 4, 5, 6, 7];
      const full = model.newSequence();
      await full.forward(tokens);

      // Reference: the kept rows, copied out of an untouched cache, fed as past at position 8.
      const feeds: Record<string, ort.Tensor> = {
        input_ids: new ort.Tensor("int64", BigInt64Array.from([BigInt(C[0])]), [1, 1]),
        attention_mask: new ort.Tensor("int64", new BigInt64Array(keep.length + 1).fill(1n), [1, keep.length + 1]),
        position_ids: new ort.Tensor("int64", BigInt64Array.from([BigInt(tokens.length)]), [1, 1]),
      };
      model.contract.kv.forEach((slot, s) => {
        const [, Hkv, , D] = slot.dims; // [B, Hkv, P, D]
        const data = new Float32Array(Hkv * keep.length * D);
        keep.forEach((index, j) => {
          const row = full.cache.row(s, index); // [Hkv, D]
          for (let h = 0; h < Hkv; h++) data.set(row.subarray(h * D, (h + 1) * D), (h * keep.length + j) * D);
        });
        feeds[slot.input] = new ort.Tensor("float32", data, [1, Hkv, keep.length, D]);
      });
      const expected = Float64Array.from(lastRow((await raw.run(feeds)).logits));

      const selected = model.newSequence();
      await selected.forward(tokens);
      selected.gather(keep, tokens.length);
      expect(selected.position).toBe(tokens.length);
      expectClose(lastRow(await selected.forward([C[0]])), expected, 1e-5);

      const packed = model.newSequence();
      await packed.forward(tokens);
      packed.gather(keep); // default: position = kept rows, which is a different input
      const differs = lastRow(await packed.forward([C[0]]));
      expect(differs.some((v, i) => Math.abs(v - expected[i]) > 1e-3)).toBe(true);
    } finally {
      await model.release();
      await raw.release();
    }
  });
});

// Per-head gather on both cache designs, fed real onnxruntime tensors, against a plain JS model
// of the cache: value(slot, outer, row, d) identifies every float, so a row in the wrong head,
// layer or place shows. Float16 slots hold the same integers as bit patterns.
describe("per-head gather keeps, per layer and KV head, the rows it names", () => {
  const HEADS = 3;
  const D = 2;
  const value = (slot: number, outer: number, row: number, d: number) => slot * 512 + outer * 64 + row * 4 + d;
  const layouts: { label: string; slots: KvSlot[] }[] = [
    {
      label: "Optimum [B, Hkv, P, D], float32",
      slots: [0, 1].flatMap((layer) => (["key", "value"] as const).map((kind) => ({ input: `past_key_values.${layer}.${kind}`, output: `present.${layer}.${kind}`, type: "float32" as const, seqAxis: 2, layer, dims: [1, HEADS, 0, D] }))),
    },
    {
      label: "Optimum [B, Hkv, P, D], float16",
      slots: [0, 1].flatMap((layer) => (["key", "value"] as const).map((kind) => ({ input: `past_key_values.${layer}.${kind}`, output: `present.${layer}.${kind}`, type: "float16" as const, seqAxis: 2, layer, dims: [1, HEADS, 0, D] }))),
    },
    {
      label: "stacked [2, B, H, P, D] (K heads then V heads in one slot)",
      slots: [0, 1].map((layer) => ({ input: `past_${layer}`, output: `present_${layer}`, type: "float32" as const, seqAxis: 3, layer, dims: [2, 1, HEADS, 0, D] })),
    },
  ];
  /** Slot `slot`'s rows [from, from + count) as the model would output them: [outer, count, D]. */
  const rowsTensor = (slot: KvSlot, index: number, from: number, count: number): ort.Tensor => {
    const outer = slot.dims.slice(0, slot.seqAxis).reduce((a, b) => a * b, 1);
    const data = slot.type === "float16" ? new Uint16Array(outer * count * D) : new Float32Array(outer * count * D);
    for (let o = 0; o < outer; o++) for (let r = 0; r < count; r++) for (let d = 0; d < D; d++) data[(o * count + r) * D + d] = value(index, o, from + r, d);
    const dims = slot.dims.slice();
    dims[slot.seqAxis] = count;
    return new ort.Tensor(slot.type, data, dims);
  };
  /** Runs two calls of `first` and `second` rows through the cache as the decoder does. */
  const filled = (kind: "present" | "append", slots: KvSlot[], first: number, second: number): KvCache => {
    const cache = kind === "append" ? new AppendKvCache(slots, "int64", 4) : new PresentKvCache(slots, "int64");
    let rows = 0;
    for (const S of [first, second]) {
      cache.prepare(S, {}, {}, false);
      cache.accept(Object.fromEntries(slots.map((slot, i) => [slot.output, kind === "append" ? rowsTensor(slot, i, rows, S) : rowsTensor(slot, i, 0, rows + S)])), S);
      rows += S;
    }
    return cache;
  };
  const expectRows = (cache: KvCache, slots: KvSlot[], keptRow: (layer: number, head: number, j: number) => number, k: number) => {
    expect(cache.length).toBe(k);
    slots.forEach((slot, i) => {
      const outer = slot.dims.slice(0, slot.seqAxis).reduce((a, b) => a * b, 1);
      const layer = cache.layers.findIndex((l) => l.layer === slot.layer);
      for (let j = 0; j < k; j++) {
        const want = Array.from({ length: outer * D }, (_, n) => value(i, Math.floor(n / D), keptRow(layer, Math.floor(n / D) % HEADS, j), n % D));
        expect(Array.from(cache.row(i, j)), `slot ${slot.input} row ${j}`).toEqual(slot.type === "float16" ? want.map(halfToFloat) : want);
      }
    });
  };

  for (const { label, slots } of layouts) {
    for (const kind of ["present", "append"] as const) {
      it(`${kind} cache, ${label}`, () => {
        const cache = filled(kind, slots, 6, 3);
        expect(cache.layers).toEqual([{ layer: 0, heads: HEADS }, { layer: 1, heads: HEADS }]);
        // Each head of each layer keeps its own 4 of the 9 rows, in its own order.
        const indices = [
          [[0, 2, 4, 8], [8, 7, 1, 0], [3, 5, 6, 7]],
          [[1, 3, 5, 7], [0, 1, 2, 3], [8, 4, 2, 6]],
        ];
        cache.gatherPerHead(indices);
        expectRows(cache, slots, (l, h, j) => indices[l]![h]![j]!, 4);
        // A later call appends after the kept rows, and a shared gather is a per-head one with one list.
        cache.prepare(1, {}, {}, false);
        expect(Array.from(cache.mask(1), Number).reduce((a, b) => a + b, 0)).toBe(5);
        cache.gather([3, 0]);
        expectRows(cache, slots, (l, h, j) => indices[l]![h]![[3, 0][j]!]!, 2);
      });
    }
  }

  it("refuses indices that do not name the same number of rows in every layer and head, or rows outside the cache", () => {
    for (const kind of ["present", "append"] as const) {
      const cache = filled(kind, layouts[0]!.slots, 4, 1);
      const heads = (rows: number[]) => [rows, rows, rows];
      expect(() => cache.gatherPerHead([heads([0, 1])])).toThrow(/holds 2/);
      expect(() => cache.gatherPerHead([heads([0, 1]), [[0, 1], [0, 1]]])).toThrow(/3 KV heads/);
      expect(() => cache.gatherPerHead([heads([0, 1]), [[0, 1], [0], [0, 1]]])).toThrow(/as many rows/);
      expect(() => cache.gatherPerHead([heads([0, 5]), heads([0, 1])])).toThrow(RangeError);
      expect(cache.length).toBe(5);
    }
  });
});
