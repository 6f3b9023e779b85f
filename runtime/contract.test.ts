import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { readContract, type DecoderContract } from "./contract.ts";
import { HAVE_SHARED, NO_SHARED, REFERENCE_DIR, SHARED_DECODERS } from "../test/helpers/runtime-models.ts";

async function contractOf(path: string): Promise<DecoderContract> {
  const session = await ort.InferenceSession.create(path);
  try {
    return readContract(session);
  } finally {
    await session.release();
  }
}

describe("model contract", () => {
  it("Optimum layout: int64 ids, positions, split K/V [B,Hkv,P,D]", async () => {
    const c = await contractOf(join(REFERENCE_DIR, "llama-torchscript/model.onnx"));
    expect(c).toMatchObject({ idsType: "int64", maskType: "int64", positionType: "int64", vocabSize: 384, kvMode: "present", recurrent: [] });
    expect(c.kv.map((s) => s.input)).toEqual(["past_key_values.0.key", "past_key_values.0.value", "past_key_values.1.key", "past_key_values.1.value"]);
    expect(c.kv[0]).toMatchObject({ output: "present.0.key", type: "float32", seqAxis: 2, dims: [1, 2, 0, 16] });
  });
});

describe.skipIf(!HAVE_SHARED)(`shared fixture contracts ${HAVE_SHARED ? "" : NO_SHARED}`, () => {
  it("genai GPT-2: int32 ids, stacked K/V past_{i} [2,B,H,P,D]", async () => {
    const c = await contractOf(SHARED_DECODERS.gpt2Fp16);
    expect(c).toMatchObject({ idsType: "int32", maskType: "int32", positionType: "int32", vocabSize: 1000 });
    expect(c.kv).toHaveLength(5);
    expect(c.kv[0]).toMatchObject({ input: "past_0", output: "present_0", type: "float16", seqAxis: 3, dims: [2, 1, 4, 0, 8] });
  });

  it("GQA qwen35: no position_ids, int64 mask, float16 cache", async () => {
    const c = await contractOf(SHARED_DECODERS.qwen35);
    expect(c.positionType).toBeUndefined();
    expect(c).toMatchObject({ idsType: "int32", maskType: "int64" });
    expect(c.kv.every((s) => s.type === "float16" && s.dims.join() === "1,2,0,16")).toBe(true);
  });

  it("hybrid LFM2: conv state is carried as recurrent state, attention layers as KV", async () => {
    const c = await contractOf(SHARED_DECODERS.lfm2);
    expect(c.recurrent.map((s) => [s.input, s.output, s.dims.join()])).toEqual([
      ["past_conv.0", "present_conv.0", "1,32,4"],
      ["past_conv.2", "present_conv.2", "1,32,4"],
    ]);
    expect(c.kv.map((s) => s.input)).toEqual(["past_key_values.1.key", "past_key_values.1.value", "past_key_values.3.key", "past_key_values.3.value"]);
  });
});
