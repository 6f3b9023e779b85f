import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { makeAttribute } from "../../graph/ir/attribute.ts";
import { Builder } from "../../graph/ir/builder.ts";
import { DataType } from "../../graph/ir/dtype.ts";
import { Model } from "../../graph/ir/model.ts";
import { tensorType } from "../../graph/ir/types.ts";
import { rng } from "../../test/helpers/ort-inputs.ts";
import { buildZooModel, gpt2Config, llamaConfig } from "../../graph/zoo/index.ts";
import { modelBytes } from "../../test/helpers/ort-parity.ts";
import { liftAttention } from "./lift.ts";
import { lowerAttention } from "./lower.ts";
import { maxDifference, prefillAndDecode } from "../../test/helpers/two-step-parity.ts";
import { isCanonical, readCanonical } from "./canonical-node.ts";

describe("lift-onnx-attention", () => {
  it("lifts is_causal over a past cache, aligned bottom-right as onnxruntime runs it", async () => {
    const model = buildZooModel(llamaConfig(), { encoding: "standard" });
    for (const n of model.graph.nodeArray().filter((n) => n.op === "Attention")) {
      n.setAttribute(makeAttribute("is_causal", 1));
      n.setInput(3, undefined); // causality alone, no mask
    }
    const before = await prefillAndDecode(modelBytes(model));
    expect(liftAttention(model).rewrites).toBe(2);
    expect(model.graph.nodeArray().filter(isCanonical).map((n) => [readCanonical(n).is_causal, n.inputs.length])).toEqual([
      [1, 3],
      [1, 3],
    ]);
    lowerAttention(model);
    expect(maxDifference(before, await prefillAndDecode(modelBytes(model)))).toBeLessThanOrEqual(1e-5);
  });

  it("takes the scale from the head size when the node has none", async () => {
    const model = buildZooModel(gpt2Config(), { encoding: "standard" });
    for (const n of model.graph.nodeArray().filter((n) => n.op === "Attention")) n.attributes.delete("scale");
    const before = await prefillAndDecode(modelBytes(model));
    liftAttention(model);
    expect(model.graph.nodeArray().filter(isCanonical).map((n) => readCanonical(n).scale)).toEqual([0.25, 0.25]);
    lowerAttention(model);
    expect(maxDifference(before, await prefillAndDecode(modelBytes(model)))).toBeLessThanOrEqual(1e-5);
  });

  for (const maskKind of ["none", "boolean", "additive"] as const) {
    it(`lifts Attention-24 nonpad_kv_seqlen (padding keys per row), attn_mask ${maskKind}`, async () => {
      const model = nonpadModel(maskKind);
      const before = await runNonpad(model, maskKind);
      expect(liftAttention(model).rewrites).toBe(1);
      lowerAttention(model);
      const after = await runNonpad(model, maskKind);
      after.forEach((x, i) => expect(Math.abs(x - before[i]!)).toBeLessThanOrEqual(1e-5));
    });
  }
});

// B=2, H=4, Hkv=2, T=3, N=5, D=8; row 0 has 5 real keys, row 1 only 2.
const NONPAD_DIMS = { q: [2, 4, 3, 8], k: [2, 2, 5, 8], v: [2, 2, 5, 8], mask: [2, 1, 3, 5] };

type MaskKind = "none" | "boolean" | "additive";

function nonpadModel(maskKind: MaskKind): Model {
  const model = new Model({ opsets: { "": 24 } });
  const b = new Builder(model.graph);
  const f = DataType.FLOAT;
  const mask = maskKind === "none" ? undefined : b.input("mask", maskKind === "boolean" ? DataType.BOOL : f, NONPAD_DIMS.mask);
  const inputs = [b.input("q", f, NONPAD_DIMS.q), b.input("k", f, NONPAD_DIMS.k), b.input("v", f, NONPAD_DIMS.v), mask, undefined, undefined, b.input("nonpad", DataType.INT64, [2])];
  b.output(b.node("Attention", inputs).output(0), "out", tensorType(f, NONPAD_DIMS.q));
  return model;
}

async function runNonpad(model: Model, maskKind: MaskKind): Promise<Float32Array> {
  const next = rng(5);
  const random = (dims: number[]) => new ort.Tensor("float32", Float32Array.from({ length: dims.reduce((a, d) => a * d) }, () => next() * 2 - 1), dims);
  const feeds: Record<string, ort.Tensor> = { q: random(NONPAD_DIMS.q), k: random(NONPAD_DIMS.k), v: random(NONPAD_DIMS.v), nonpad: new ort.Tensor("int64", BigInt64Array.from([5n, 2n]), [2]) };
  const mask = random(NONPAD_DIMS.mask);
  // Key 0 stays visible, so no row is left without keys.
  if (maskKind === "boolean") feeds["mask"] = new ort.Tensor("bool", Uint8Array.from(mask.data as Float32Array, (x, i) => (i % 5 === 0 || x > 0 ? 1 : 0)), NONPAD_DIMS.mask);
  if (maskKind === "additive") feeds["mask"] = mask;
  const session = await ort.InferenceSession.create(modelBytes(model));
  try {
    return (await session.run(feeds))["out"]!.data as Float32Array;
  } finally {
    await session.release();
  }
}
