import { describe, expect, it } from "vitest";
import { Builder, type Model, type Value } from "../../graph/ir/index.ts";
import { buildZooModel, gpt2Config, llamaConfig } from "../../graph/zoo/index.ts";
import { CachedDecoder, maxAbsDiff, modelToBytes } from "../../test/helpers/zoo-decode.ts";
import { createAllPositionLogits } from "./all-position-logits.ts";

const PROMPT = [1, 17, 42, 99, 5];

function run(model: Model): { changed: boolean; stats?: Record<string, number> } {
  return createAllPositionLogits().run(model, { options: {}, note: () => {} });
}

/** Mimics an exporter that keeps only the last position: every reader of `hidden` reads its last row instead. */
function pickLast(model: Model, hidden: Value, kind: "slice" | "gather-scalar" | "gather-1d"): void {
  const readers = hidden.consumers();
  const order = model.graph.nodeArray();
  const first = readers.reduce((a, n) => (order.indexOf(n) < order.indexOf(a) ? n : a));
  const b = new Builder(model.graph, { before: first });
  const picked =
    kind === "slice"
      ? b.op.Slice(hidden, b.int64([-1]), b.int64([2 ** 62]), b.int64([1]))
      : b.op.Gather(hidden, kind === "gather-scalar" ? b.int64(-1) : b.int64([-1]), { axis: 1 });
  for (const reader of readers) reader.inputs.forEach((v, i) => v === hidden && reader.setInput(i, picked));
}

/** The step's logits as rows of `vocab` (a scalar-index pick returns [B, V], without the position axis). */
async function logitsOf(model: Model, tokens: number[], vocab: number): Promise<{ data: Float32Array; rows: number; vocab: number }> {
  const decoder = await CachedDecoder.open(modelToBytes(model));
  try {
    const step = await decoder.step(tokens);
    return { data: step.logits, rows: step.logits.length / vocab, vocab };
  } finally {
    await decoder.release();
  }
}

const lmHead = (m: Model) => m.graph.outputs.find((v) => v.name === "logits")!.producer!;
const lmHeadInput = (m: Model) => lmHead(m).input(0)!;
/** The residual stream's last value, read by the final RMSNorm (twice: its square and its scaling). */
const finalResidual = (m: Model) => {
  let node = lmHead(m);
  while (!(node.op === "Add" && node.inputs.every((v) => v && !v.isInitializer))) node = node.inputs.find((v) => v && !v.isInitializer)!.producer!;
  return node.output(0);
};

describe("all-position-logits", () => {
  const cases = [
    { name: "llama, Slice before the LM head", config: llamaConfig({ layers: 2 }), at: lmHeadInput, kind: "slice" as const },
    { name: "llama, scalar Gather before the final RMSNorm", config: llamaConfig({ layers: 2 }), at: finalResidual, kind: "gather-scalar" as const },
    { name: "gpt2, [-1] Gather before the LM head", config: gpt2Config({ layers: 2 }), at: lmHeadInput, kind: "gather-1d" as const },
  ];
  for (const c of cases) {
    it(`${c.name}: logits for every position, the last row equal to the picked one`, async () => {
      const full = await logitsOf(buildZooModel(c.config), PROMPT, c.config.vocabSize);
      const model = buildZooModel(c.config);
      pickLast(model, c.at(model), c.kind);
      const picked = await logitsOf(model, PROMPT, c.config.vocabSize);
      expect(picked.rows).toBe(1);

      expect(run(model)).toEqual({ changed: true, stats: { "picks-removed": 1 } });
      const all = await logitsOf(model, PROMPT, c.config.vocabSize);
      expect(all.rows).toBe(PROMPT.length);
      expect(maxAbsDiff(all.data, full.data)).toBe(0);
      expect(maxAbsDiff(all.data.subarray((PROMPT.length - 1) * all.vocab), picked.data)).toBeLessThan(1e-5);
      expect(run(model).changed).toBe(false);
    });
  }

  it("leaves a model that already returns every position alone", () => {
    expect(run(buildZooModel(llamaConfig()))).toEqual({ changed: false, stats: { "picks-removed": 0 } });
  });

  it("refuses a pick followed by something that mixes positions", () => {
    const model = buildZooModel(llamaConfig());
    const head = lmHead(model);
    const b = new Builder(model.graph, { before: head });
    const picked = b.op.Slice(head.input(0)!, b.int64([-1]), b.int64([2 ** 62]), b.int64([1]));
    head.setInput(0, b.op.CumSum(picked, b.int64(1)));
    expect(run(model).changed).toBe(false);
  });
});
