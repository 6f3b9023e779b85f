import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { DataType } from "../../../graph/ir/dtype.ts";
import type { Model } from "../../../graph/ir/model.ts";
import { Tensor } from "../../../graph/ir/tensor.ts";
import { loadModel } from "../../../graph/onnx/index.ts";
import { buildZooModel, llamaConfig, type RotaryLayout } from "../../../graph/zoo/index.ts";
import { sparsify } from "../../../test/helpers/sparse-parity.ts";
import { streamingLlm, streamingLlmLayers } from "../streaming-llm.ts";
import { chainedExactness } from "../../../test/helpers/chained-parity.ts";
import { MS_DOMAIN } from "./fused-rotary.ts";

const LAYERS = 3;
const STREAMING = { sinks: 4, window: 8 };
const covering = (m: Model) => streamingLlm(m, { sinks: 4, window: 1 << 20 });

/** Rewrites `model` with streaming-llm; how many layers re-rotate and how many fused RotaryEmbedding nodes do it. */
function rewrite(model: Model): { rotated: number; fused: number; imports: number | undefined } {
  let rotated = 0;
  sparsify(model, (m) => ({ rotated } = streamingLlmLayers(m, STREAMING)).layers);
  const fused = model.graph.nodeArray().filter((n) => n.domain === MS_DOMAIN && n.op === "RotaryEmbedding").length;
  return { rotated, fused, imports: model.opset(MS_DOMAIN) };
}

/** A zoo llama whose rotary tables have unequal halves and lane pairs: no form the fused op computes. */
function unevenTables(rotary: RotaryLayout): Model {
  const model = buildZooModel(llamaConfig({ layers: LAYERS, rotary }));
  let changed = 0;
  for (const v of model.graph.initializers.values()) {
    if (!/rotary_(cos|sin)/.test(v.name)) continue;
    const [P, D] = v.initializer!.dims as [number, number];
    const values = Float32Array.from(v.initializer!.toArray() as Float32Array);
    for (let r = 0; r < P; r++) for (let i = 0; i < D; i++) values[r * D + i]! *= 1 + i / D;
    v.initializer = Tensor.fromArray(v.name, DataType.FLOAT, [P, D], values);
    changed++;
  }
  expect(changed, "the zoo's rotary tables").toBe(2);
  return model;
}

describe("fused-rotary: the cache is re-rotated by one com.microsoft.RotaryEmbedding a layer", () => {
  for (const rotary of ["half", "interleaved"] as const) {
    for (const encoding of ["decomposed", "ms"] as const) {
      it(`zoo llama ${rotary} ${encoding}: the keys and the sink queries of every layer`, () => {
        const r = rewrite(buildZooModel(llamaConfig({ layers: LAYERS, rotary }), { encoding }));
        expect(r).toEqual({ rotated: LAYERS, fused: 2 * LAYERS, imports: 1 });
      });
    }
  }

  it("ONNX's RotaryEmbedding-23 is copied as it is (one op already)", () => {
    expect(rewrite(buildZooModel(llamaConfig({ layers: LAYERS }), { encoding: "standard" }))).toEqual({ rotated: LAYERS, fused: 0, imports: undefined });
  });

  for (const name of ["llama-torchscript", "qwen2-dynamo"]) {
    it(`the reference export ${name} (rotate_half with x.shape[-1] // 2 computed in the graph)`, () => {
      const r = rewrite(loadModel(resolve(import.meta.dirname, "../../../test/fixtures/reference", name, "model.onnx")));
      expect(r.rotated).toBeGreaterThan(0);
      expect(r.fused).toBe(2 * r.rotated);
    });
  }

  it("sotu-tiny (cos and sin computed as cos(concat(f, f)))", () => {
    expect(rewrite(loadModel(resolve(import.meta.dirname, "../../../examples/models/sotu-tiny/model.onnx")))).toEqual({ rotated: 4, fused: 8, imports: 1 });
  });
});

describe("fused-rotary: tables the fused op cannot take keep the rotation spelled in standard ops", () => {
  for (const rotary of ["half", "interleaved"] as const) {
    it(`${rotary} rotary with unequal table lanes: nothing fused, still exact with a window covering the context`, async () => {
      expect(rewrite(unevenTables(rotary))).toEqual({ rotated: LAYERS, fused: 0, imports: undefined });
      const r = await chainedExactness({ name: `uneven ${rotary}`, load: () => unevenTables(rotary) }, covering);
      expect(r.rewritten).toBe(LAYERS);
      expect(r.diff).toBeLessThanOrEqual(1e-5);
    });
  }
});
