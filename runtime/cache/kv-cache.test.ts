// KV cache edits checked against recomputation: after a rollback or a gather, the next
// logits must equal those of a fresh run over the tokens the cache now stands for.
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DecoderModel } from "../decoder.ts";
import { isRuntimeError } from "../errors.ts";
import { HAVE_SHARED, lastLogitsFromScratch, NO_SHARED, REFERENCE_DIR, SHARED_DECODERS } from "../../test/helpers/runtime-models.ts";
import { floatData, readFloatRow } from "../tensors.ts";

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
