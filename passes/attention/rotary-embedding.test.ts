import { describe, expect, it } from "vitest";
import { Builder } from "../../graph/ir/builder.ts";
import { DataType } from "../../graph/ir/dtype.ts";
import { Model } from "../../graph/ir/model.ts";
import { inferShapes } from "../../graph/ir/shape-inference/index.ts";
import type { Value } from "../../graph/ir/value.ts";
import { buildZooModel, llamaConfig } from "../../graph/zoo/index.ts";
import { projectExactnessCases } from "../../test/helpers/sparse-parity.ts";
import { denseCanonicalNodes } from "../sparse-attention/layers.ts";
import { streamingLlmLayers } from "../kv/streaming-llm.ts";
import { Rerotation } from "../kv/streaming-llm/rotation.ts";
import { createTokenSelect } from "../sparse-attention/token-select.ts";
import { liftAttention } from "./lift.ts";
import { traceRotary, unrotatedSource, type RotaryForm } from "./rotary-embedding.ts";

/** What each encoding's query goes through after lifting (the numbers: passes/sparse-attention/selection-cache.test.ts). */
const EXPECTED: Record<string, RotaryForm | "none"> = {
  "zoo llama decomposed": "decomposed",
  "zoo llama ms": "decomposed", // the lifter's standard-op rotary for GroupQueryAttention's do_rotary
  "zoo llama standard": "RotaryEmbedding",
  "reference llama-dynamo": "decomposed",
  "reference llama-torchscript": "decomposed",
  "reference qwen2-dynamo": "decomposed",
  "reference qwen2-torchscript": "decomposed",
};

describe("traceRotary finds each layer's query before rotary", () => {
  for (const c of projectExactnessCases()) {
    const want = EXPECTED[c.name] ?? (c.name.includes("gpt2") ? "none" : undefined);
    it(`${c.name}: ${want}`, async () => {
      const model = await c.load();
      liftAttention(model);
      const nodes = denseCanonicalNodes(model);
      expect(nodes.length).toBeGreaterThan(0);
      for (const node of nodes) {
        const trace = traceRotary(node.inputs[0]!);
        expect("reason" in trace ? trace.reason : (trace.rotary ?? "none")).toBe(want);
      }
    });
  }

  it("com.microsoft.RotaryEmbedding before GroupQueryAttention (head width 8): its input, through the head split", () => {
    const model = buildZooModel(llamaConfig({ hidden: 32, heads: 4, kvHeads: 2 }), { encoding: "ms" });
    liftAttention(model);
    for (const node of denseCanonicalNodes(model)) {
      const trace = traceRotary(node.inputs[0]!);
      expect(trace).toMatchObject({ rotary: "com.microsoft.RotaryEmbedding" });
      if ("layout" in trace) expect(trace.layout.map((n) => n.op)).toEqual(["Reshape", "Transpose"]);
    }
  });

  it("interleaved (GPT-J) pairs too", () => {
    const model = buildZooModel(llamaConfig({ rotary: "interleaved" }), { encoding: "decomposed" });
    liftAttention(model);
    for (const node of denseCanonicalNodes(model)) expect(traceRotary(node.inputs[0]!)).toMatchObject({ rotary: "decomposed" });
  });
});

describe("partial rotary: a fused RotaryEmbedding of the first lanes, the rest passed through (GPT-NeoX)", () => {
  /** x [1, 2, 3, 8]; RotaryEmbedding of lanes [0, 4), Concat with lanes [tailStart, end). */
  function partial(tailStart: number): { x: Value; rotated: Value } {
    const model = new Model({ opsets: { "": 23 } });
    const b = new Builder(model.graph);
    const x = b.input("x", DataType.FLOAT, [1, 2, 3, 8]);
    const positions = b.input("position_ids", DataType.INT64, [1, 3]);
    const table = b.float32(Array(16 * 2).fill(0.5), [16, 2]);
    const lanes = (start: number, end: number) => b.op.Slice(x, b.int64([start]), b.int64([end]), b.int64([-1]), b.int64([1]));
    const head = b.op.RotaryEmbedding(lanes(0, 4), table, table, positions);
    const rotated = b.typed(b.op.Concat(head, lanes(tailStart, 2 ** 62), { axis: -1 }), DataType.FLOAT, [1, 2, 3, 12 - tailStart]);
    inferShapes(model);
    return { x, rotated };
  }

  it("traces to x, form 'partial'", () => {
    const { x, rotated } = partial(4);
    expect(traceRotary(rotated)).toMatchObject({ source: x, rotary: "partial" });
  });

  it("is not taken for a rotary of x when the lanes do not add up", () => {
    expect(traceRotary(partial(5).rotated)).toEqual({ reason: expect.stringMatching(/no rotary form was recognised at Concat/) });
  });
});

describe("a positional query that matches no rotary form", () => {
  /** The zoo's rotated query plus the position itself: positional, but no rotation of one x. */
  function unknownRotary() {
    const model = buildZooModel(llamaConfig({ layers: 1 }), { encoding: "decomposed" });
    liftAttention(model);
    const [node] = denseCanonicalNodes(model);
    const b = new Builder(model.graph, { before: node });
    const positions = model.graph.inputs.find((v) => v.name === "position_ids")!;
    const odd = b.op.Add(node!.inputs[0]!, b.op.Unsqueeze(b.op.Cast(positions, { to: DataType.FLOAT }), b.int64([1, 3])));
    node!.setInput(0, odd);
    return { model, query: odd };
  }

  it("is a reason naming what is positional, not a guess", () => {
    const trace = traceRotary(unknownRotary().query);
    expect(trace).toEqual({ reason: expect.stringMatching(/depends on graph input position_ids after its projection, but no rotary form was recognised at Add/) });
  });

  it("makes tokenselect fall back to the rotated query and say so", () => {
    const { model } = unknownRotary();
    const notes: string[] = [];
    const result = createTokenSelect({ selectionCache: { threshold: 0.9 } }).run(model, { options: {}, note: (n) => notes.push(n) });
    expect(result.stats).toMatchObject({ "fingerprint-unrotated": 0, "fingerprint-rotated": 1 });
    expect(notes).toEqual([expect.stringMatching(/^layer 0: the selection-cache fingerprint is the rotated query \(.*position_ids/)]);
  });
});

describe("one recognition serves TokenSelect's fingerprint and StreamingLLM's re-rotation", () => {
  /** A lifted zoo llama with head width 8 (the ms encoding then rotates by com.microsoft.RotaryEmbedding). */
  function lifted(encoding: "decomposed" | "standard" | "ms"): Model {
    const model = buildZooModel(llamaConfig({ hidden: 32, heads: 4, kvHeads: 2, layers: 2 }), { encoding });
    liftAttention(model);
    return model;
  }

  for (const encoding of ["decomposed", "standard"] as const) {
    it(`${encoding}: StreamingLLM re-rotates the operand traceRotary names, laid out as the rotated value`, () => {
      const model = lifted(encoding);
      const flow = new Rerotation(model.graph);
      let layers = 0;
      for (const node of denseCanonicalNodes(model)) {
        // The keys' new rows: the cached ones are Concat(past, rows).
        for (const rotated of [node.inputs[0]!, node.inputs[1]!.producer!.inputs[1]!]) {
          const trace = traceRotary(rotated);
          if (!("layout" in trace)) throw new Error(`no rotary behind ${rotated.name}`);
          const b = new Builder(model.graph, { before: node });
          const { unrotated } = flow.rotationOf(b, rotated, "probe")!;
          const fingerprinted = unrotatedSource(b, rotated);
          // The same layout replayed on the same source: equal producer chains down to it.
          const chain = (v: Value): string[] => (v === trace.source ? [] : [v.producer!.op, ...chain(v.producer!.inputs[0]!)]);
          expect(chain(unrotated)).toEqual(trace.layout.map((n) => n.op).reverse());
          expect("value" in fingerprinted && chain(fingerprinted.value)).toEqual(chain(unrotated));
          layers++;
        }
      }
      expect(layers).toBe(4);
    });
  }

  it("com.microsoft.RotaryEmbedding: the fingerprint is un-rotated, StreamingLLM re-rotates every layer's keys with the same op", () => {
    const stats = createTokenSelect({ selectionCache: { threshold: 0.9 } }).run(lifted("ms"), { options: {}, note: () => {} }).stats;
    expect(stats).toMatchObject({ "fingerprint-unrotated": 2, "fingerprint-rotated": 0 });
    // (Exact at other positions: the kept-rows oracle on the export matrix's com.microsoft.RotaryEmbedding fixtures.)
    const model = lifted("ms");
    expect(streamingLlmLayers(model, { sinks: 4, window: 8 })).toEqual({ layers: 2, rotated: 2 });
  });
});
