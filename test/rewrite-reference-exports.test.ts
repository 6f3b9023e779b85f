// The rewrite engine on real exporter output (test/fixtures/reference): a rule that fires is
// checked end to end (the rewritten model still decodes PyTorch's greedy tokens), and the Gemm
// rule's refusals on 3-D activations are explained, not silent.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadModel, saveModel } from "../graph/onnx/index.ts";
import { PROVENANCE_KEY } from "../graph/ir/index.ts";
import { applyRules, findMatches, traceRule, type Rule } from "../graph/rewrite/index.ts";
import { matmulAddToGemm } from "../passes/cleanup/rules/matmul-add-to-gemm.ts";
import { greedyReference } from "./helpers/reference-loop.ts";

const REFERENCE_DIR = join(import.meta.dirname, "fixtures", "reference");
const exports = readdirSync(REFERENCE_DIR, { withFileTypes: true })
  .filter((e) => e.isDirectory())
  .map((e) => e.name)
  .sort();

/** x * (1 / d) -> x / d: RMSNorm's normalisation in the dynamo exports. */
const mulReciprocalToDiv: Rule = {
  name: "mul-reciprocal-to-div",
  commute: true,
  pattern: (p) => p.op.Mul(p.var("x"), p.op.Reciprocal(p.var("d"))),
  rewrite: (b, m) => b.op.Div(m.values.x, m.values.d),
};

interface Expected {
  max_new_tokens: number;
  prompts: { input_ids: number[]; greedy: number[] }[];
}

const scratch = mkdtempSync(join(tmpdir(), "pipec-rewrite-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe("rewriting reference exports", () => {
  // Two layers plus the final norm: five RMSNorms, each with one Reciprocal feeding one Mul.
  for (const name of ["llama-dynamo", "qwen2-dynamo"]) {
    it(`${name}: rewrites all five RMSNorm reciprocals and still decodes PyTorch's greedy tokens`, async () => {
      const dir = join(REFERENCE_DIR, name);
      const model = loadModel(join(dir, "model.onnx"));
      const stats = applyRules(model, [mulReciprocalToDiv]);
      expect(stats.rewrites).toBe(5);
      const nodes = [...model.graph.allNodes()];
      expect(nodes.filter((n) => n.op === "Reciprocal")).toHaveLength(0);
      expect(nodes.filter((n) => n.metadata.get(PROVENANCE_KEY) === mulReciprocalToDiv.name).map((n) => n.op)).toEqual(Array(5).fill("Div"));

      const out = join(scratch, name, "model.onnx");
      saveModel(model, out);
      const expected = JSON.parse(readFileSync(join(dir, "expected.json"), "utf8")) as Expected;
      const { input_ids, greedy } = expected.prompts[0]!;
      expect(await greedyReference(out, input_ids, expected.max_new_tokens)).toEqual(greedy);
    });
  }

  for (const name of exports) {
    it(`${name}: the Gemm rule refuses every MatMul+Add and says why`, () => {
      const model = loadModel(join(REFERENCE_DIR, name, "model.onnx"));
      const candidates = findMatches(model, (p) => p.op.Add(p.op.MatMul(p.var("a"), p.constant("w")), p.var("bias")).commute());
      const stats = applyRules(model, [matmulAddToGemm], { trace: true });
      expect(stats.rewrites).toBe(0);
      const [rule] = stats.rules;
      expect(rule!.matched).toBe(candidates.length);
      if (candidates.length > 0) {
        // Activations are [B, S, D]: known rank 3 in dynamo exports, unrecorded in torchscript ones.
        const reasons = [...rule!.reasons.keys()];
        expect(reasons.every((r) => /^MatMul input A has (rank 3|unknown rank); Gemm needs 2-D$/.test(r)), reasons.join("; ")).toBe(true);
        expect(traceRule(model, matmulAddToGemm).nearMiss?.stage).toBe("check");
      }
    });
  }
});
