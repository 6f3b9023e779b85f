import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { float, makeAttribute } from "../../graph/ir/attribute.ts";
import { loadModel } from "../../graph/onnx/index.ts";
import { saveModel } from "../../graph/onnx/save.ts";
import { buildZooModel, llamaConfig } from "../../graph/zoo/index.ts";
import { pipec } from "../../test/helpers/run-cli.ts";
import { tempDir } from "../../test/helpers/tmp.ts";
import { findAttentionBlocks } from "./index.ts";

const REFERENCE = resolve(import.meta.dirname, "../../test/fixtures/reference");

describe("findAttentionBlocks", () => {
  it("reports each layer of a decomposed export with its heads, scale and cache names", () => {
    const report = findAttentionBlocks(loadModel(join(REFERENCE, "llama-dynamo/model.onnx")));
    expect(report.forms).toEqual({ decomposed: 2 });
    expect(report.unrecognised).toEqual([]);
    expect(report.layers.map((l) => [l.layer, l.num_heads, l.kv_num_heads, l.scale, l.past_key, l.present_value])).toEqual([
      [0, 4, 2, 0.25, "past_key_values.0.key", "present.0.value"],
      [1, 4, 2, 0.25, "past_key_values.1.key", "present.1.value"],
    ]);
  });

  it("reports fused GroupQueryAttention as causal with its rule", () => {
    const report = findAttentionBlocks(buildZooModel(llamaConfig({ layers: 3 }), { encoding: "ms" }));
    expect(report.forms).toEqual({ "com.microsoft.GroupQueryAttention": 3 });
    expect(report.layers.map((l) => [l.rule, l.is_causal, l.present_key])).toEqual(
      [0, 1, 2].map((i) => ["lift-ms-group-query-attention", 1, `present.${i}.key`]),
    );
  });

  it("reports a fused op it cannot lift with the reason", () => {
    const model = buildZooModel(llamaConfig(), { encoding: "ms" });
    const [first] = model.graph.nodeArray().filter((n) => n.op === "GroupQueryAttention");
    first!.setAttribute(makeAttribute("local_window_size", 4));
    const report = findAttentionBlocks(model);
    expect(report.layers.map((l) => l.layer)).toEqual([1]);
    expect(report.unrecognised).toEqual([{ node: first!.describe(), reason: expect.stringContaining("uses a local window") }]);
  });

  it("refuses standard Attention with capped scores, naming the attribute", () => {
    const model = buildZooModel(llamaConfig(), { encoding: "standard" });
    for (const n of model.graph.nodeArray().filter((n) => n.op === "Attention")) n.setAttribute(makeAttribute("softcap", float(30)));
    const report = findAttentionBlocks(model);
    expect(report.layers).toEqual([]);
    expect(report.unrecognised.map((u) => u.reason)).toEqual([expect.stringContaining("(softcap)"), expect.stringContaining("(softcap)")]);
  });
});

describe("pipec inspect --json: attention", () => {
  it("counts layers per form and lists each block", async () => {
    const path = join(tempDir(), "gqa.onnx");
    saveModel(buildZooModel(llamaConfig(), { encoding: "ms" }), path);
    const r = await pipec("inspect", "--json", path);
    expect(r.code).toBe(0);
    const { attention } = JSON.parse(r.out);
    expect(attention.layers).toBe(2);
    expect(attention.forms).toEqual({ "com.microsoft.GroupQueryAttention": 2 });
    expect(attention.blocks[1]).toMatchObject({ layer: 1, heads: 4, kvHeads: 2, causal: true, pastKey: "past_key_values.1.key", presentValue: "present.1.value" });
    expect(attention.unrecognised).toEqual([]);
  });

  it("prints a one-line summary in text mode", async () => {
    const r = await pipec("inspect", join(REFERENCE, "gpt2-torchscript/model.onnx"));
    expect(r.out).toContain("  attention: 2 layers (decomposed 2)\n");
  });
});

describe("pipec opt --passes lift-attention,lower-attention", () => {
  it("lifts and lowers a reference export, noting the blocks per rule", async () => {
    const out = join(tempDir(), "roundtrip.onnx");
    const r = await pipec("opt", join(REFERENCE, "qwen2-torchscript/model.onnx"), "-o", out, "--passes", "lift-attention,lower-attention", "--timing");
    expect(r.code).toBe(0);
    expect(r.err).toContain("lift-decomposed-attention: 2 blocks");
    const lowered = loadModel(out);
    expect(lowered.graph.nodeArray().filter((n) => n.op === "Softmax")).toHaveLength(2);
    expect(lowered.opset("pipec")).toBeUndefined();
  });
});
