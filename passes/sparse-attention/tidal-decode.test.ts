import { describe, expect, it } from "vitest";
import type { Model } from "../../graph/ir/model.ts";
import { buildZooModel, llamaConfig } from "../../graph/zoo/index.ts";
import { defaultRegistry } from "../../compiler/methods/registry.ts";
import { APPEND_ONLY_CASES, spareRowsDiff, thenAppendOnly } from "../../test/helpers/append-only-parity.ts";
import { isCanonical, readCanonical } from "../attention/canonical-node.ts";
import { liftAttention } from "../attention/lift.ts";
import { lowerAttention } from "../attention/lower.ts";
import { HAVE_SHARED, SKIP_SHARED_REASON } from "../../test/helpers/fixtures.ts";
import { exactness, maxOutputDiff, projectExactnessCases, runStep, sharedExactnessCases, sparsify } from "../../test/helpers/sparse-parity.ts";
import { defaultSelectLayers, tidalDecode, type TidalDecodeOptions } from "./tidal-decode.ts";

const EXACT = 1e-5;
/**
 * stories260K's logits reach ~13, where 1e-5 is ~10 float32 ulps: two-block attention (the
 * selected past rows, then the new rows, summed) orders the additions differently from one MatMul
 * over every key, which moves them by ~1.1e-5 (1e-6 relative).
 */
const EXACT_SHARED = 2e-5;
/** Layer 0 selects, every later layer is sparse: the most sparse layers a 2-layer export allows. */
const covering = (m: Model) => tidalDecode(m, { topK: { tokens: 1 << 20 }, fullLayers: 0, selectLayers: [0] }).sparse;

describe("tidal with a budget covering the context is exact", () => {
  for (const c of projectExactnessCases()) {
    it(c.name, async () => {
      const r = await exactness(c, covering);
      expect(r.lifted).toBeGreaterThan(1);
      expect(r.rewritten).toBe(r.lifted - 1);
      expect(r.diff).toBeLessThanOrEqual(EXACT);
    });
  }
  it("top_k 100% (a share of the context)", async () => {
    const r = await exactness({ name: "zoo", load: () => buildZooModel(llamaConfig({ layers: 3 })) }, (m) => tidalDecode(m, { topK: { percent: 100 }, fullLayers: 0, selectLayers: [0] }).sparse);
    expect(r.rewritten).toBe(2);
    expect(r.diff).toBeLessThanOrEqual(EXACT);
  });
});

describe.skipIf(!HAVE_SHARED)(`tidal on the shared fixtures (${HAVE_SHARED ? "present" : SKIP_SHARED_REASON})`, () => {
  for (const c of sharedExactnessCases()) {
    it(c.name, async () => {
      const r = await exactness(c, covering);
      expect(r.rewritten).toBe(Math.max(0, r.lifted - 1));
      expect(r.diff).toBeLessThanOrEqual(EXACT_SHARED);
    });
  }
});

describe("tidal layer roles", () => {
  it("scales the paper's re-selection layer (13 of 32) to the model's depth", () => {
    expect(defaultSelectLayers(32, 2)).toEqual([2, 13]);
    expect(defaultSelectLayers(16, 2)).toEqual([2, 7]);
    expect(defaultSelectLayers(5, 2)).toEqual([2]);
    // A shallow model keeps its sparse layers: a re-selection needs one before and one after it.
    expect(defaultSelectLayers(2, 0)).toEqual([0]);
    expect(defaultSelectLayers(4, 0)).toEqual([0, 2]);
  });

  it("keeps full attention below full_layers and in the selection layers; the rest gather per head", () => {
    const model = buildZooModel(llamaConfig({ layers: 16 }));
    liftAttention(model);
    const stats = tidalDecode(model, { topK: { tokens: 8 }, fullLayers: 2 });
    expect(stats).toEqual({ layers: 16, fullLayers: 2, selectLayers: [2, 7], selection: 2, sparse: 12 });
    const sparseLayers = [3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15];
    // The full layers stay canonical; the selection layers attend densely over past and new rows
    // as two blocks, their past keys read once (by the attention's scores, which the top-k reuses).
    expect(model.graph.nodeArray().filter((n) => isCanonical(n)).map((n) => readCanonical(n).layer)).toEqual([0, 1]);
    for (const layer of [2, 7]) {
      const past = model.graph.inputs.find((i) => i.name === `past_key_values.${layer}.key`)!;
      expect(past.uses.map((u) => u.node.op).filter((op) => op !== "Shape").sort()).toEqual(["Concat", "Transpose"]);
    }
    for (const layer of sparseLayers) {
      for (const kind of ["key", "value"]) {
        const past = model.graph.inputs.find((i) => i.name === `past_key_values.${layer}.${kind}`)!;
        // The past is read only flattened into rows for the per-head Gather (each KV head gathers
        // its query heads' choices), besides the cache's Concat that feeds the present output alone.
        const readers = past.uses.map((u) => u.node);
        const rowGathers = readers.filter((n) => n.op === "Reshape" && n.output(0).uses.some((u) => u.node.op === "Gather"));
        expect(rowGathers).toHaveLength(1);
        const concat = readers.find((n) => n.op === "Concat")!;
        expect(concat.output(0).uses).toHaveLength(0);
        expect(model.graph.outputs).toContain(concat.output(0));
      }
    }
  });

  it("refuses selection layers below full_layers", () => {
    const model = buildZooModel(llamaConfig({ layers: 4 }));
    liftAttention(model);
    const options: TidalDecodeOptions = { topK: { tokens: 8 }, fullLayers: 2, selectLayers: [1] };
    expect(() => tidalDecode(model, options)).toThrow(/select_layers \[1\] must not be below full_layers \(2\)/);
  });

  it("reads its options as a .pipe writes them", () => {
    const [{ pass }] = defaultRegistry().resolve([{ name: "tidal", options: { top_k: "12.5%", select_layers: "[2, 5]" } }]);
    expect(pass.lossy).toBe(true);
    expect(pass.description).toContain("top-12.5%");
    expect(() => defaultRegistry().resolve([{ name: "tidal", options: { top_k: "0" } }])).toThrow(/budget '0'/);
  });
});

describe("tidal with a small budget", () => {
  it("changes decode steps only: a prefill stays dense", async () => {
    const config = llamaConfig({ layers: 4 });
    const dense = buildZooModel(config);
    const sparse = buildZooModel(config);
    expect(sparsify(sparse, (m) => tidalDecode(m, { topK: { tokens: 4 }, fullLayers: 1, selectLayers: [1] }).sparse).rewritten).toBe(2);
    expect(maxOutputDiff(await runStep(dense, { past: 0, seq: 12 }), await runStep(sparse, { past: 0, seq: 12 }))).toBeLessThanOrEqual(EXACT);
    expect(maxOutputDiff(await runStep(dense, { past: 3, seq: 4 }), await runStep(sparse, { past: 3, seq: 4 }))).toBeLessThanOrEqual(EXACT);
    expect(maxOutputDiff(await runStep(dense, { past: 40, seq: 1 }), await runStep(sparse, { past: 40, seq: 1 }))).toBeGreaterThan(1e-3);
  });
});

describe("tidal's selection", () => {
  it("takes per head the k past keys with the highest scores of the selection layer", async () => {
    const model = buildZooModel(llamaConfig({ layers: 3 }));
    liftAttention(model);
    tidalDecode(model, { topK: { tokens: 9 }, fullLayers: 1, selectLayers: [1] });
    // The selection layer's scores and the keys the sparse layer gathers (TopK's input and indices), as outputs.
    const topK = model.graph.nodeArray().find((n) => n.op === "TopK")!;
    model.graph.addOutput(topK.inputs[0]!);
    model.graph.addOutput(topK.output(1));
    lowerAttention(model);
    const out = await runStep(model, { past: 40, seq: 1 });
    const scores = out[topK.inputs[0]!.name]!;
    const keep = out[topK.output(1).name]!;
    const [, H, M] = scores.dims as number[];
    expect(M).toBe(40);
    expect(keep.dims).toEqual([1, H, 8]); // 9 keys: the new row and the 8 best past rows
    const ascending = (xs: number[]) => [...xs].sort((a, b) => a - b);
    for (let h = 0; h < H!; h++) {
      const row = Array.from((scores.data as Float32Array).subarray(h * M!, (h + 1) * M!));
      const best = row.map((s, m) => ({ s, m })).sort((a, b) => b.s - a.s).slice(0, 8).map((x) => x.m);
      expect(ascending(Array.from(keep.data as BigInt64Array, Number).slice(h * 8, (h + 1) * 8))).toEqual(ascending(best));
    }
  });

  it("builds the masks over the selected keys once per selection, shared by its sparse layers", () => {
    const model = buildZooModel(llamaConfig({ layers: 16 }));
    liftAttention(model);
    const stats = tidalDecode(model, { topK: { tokens: 8 }, fullLayers: 2 });
    expect(stats.sparse).toBe(12);
    expect(model.graph.nodeArray().filter((n) => n.op === "GatherElements")).toHaveLength(stats.selection);
  });
});

describe("tidal composed with kv-append-only (no cache Concat left) with a covering budget is exact", () => {
  for (const c of projectExactnessCases().filter((c) => APPEND_ONLY_CASES.test(c.name))) {
    it(c.name, async () => {
      const r = await exactness(c, thenAppendOnly(covering));
      expect(r.rewritten).toBe(r.lifted - 1);
      expect(r.diff).toBeLessThanOrEqual(EXACT);
    });
  }
});

describe("tidal on an append-only buffer", () => {
  it("ignores the buffer's masked spare rows: a step equals the one fed just the cache (small budget)", async () => {
    const model = buildZooModel(llamaConfig({ layers: 4 }));
    sparsify(model, thenAppendOnly((m) => tidalDecode(m, { topK: { percent: 25 }, fullLayers: 1, selectLayers: [1] }).sparse));
    expect(await spareRowsDiff(model, 40, 24)).toBeLessThanOrEqual(EXACT);
  });
});
