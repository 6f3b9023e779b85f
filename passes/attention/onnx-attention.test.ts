import { describe, expect, it } from "vitest";
import { makeAttribute } from "../../compiler/ir/attribute.ts";
import { buildZooModel, gpt2Config, llamaConfig } from "../../compiler/zoo/index.ts";
import { modelBytes } from "../../test/helpers/ort-parity.ts";
import { liftAttention } from "./lift.ts";
import { lowerAttention } from "./lower.ts";
import { maxDifference, prefillAndDecode } from "./two-step-parity.test-support.ts";
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
});
