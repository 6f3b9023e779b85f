// Attention recognition on the export matrix (test/fixtures/export-matrix, made by
// tools/export_matrix.py from real transformers model code): every fixture's attention layers are
// found with the config's heads, KV heads (the cache's), scale and KV I/O names, rotary is found
// behind Q and the new keys where the model has it, and lift-attention + lower-attention leaves
// outputs unchanged (logits of a prefill and a decode step, greedy tokens of the reference loop).
// Prints the table architecture x implementation x exporter x optimiser -> found / expected.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { Value } from "../graph/ir/value.ts";
import { loadModel, saveModel } from "../graph/onnx/index.ts";
import { findAttentionBlocks, isCanonical, liftAttention, lowerAttention, readCanonical } from "../passes/attention/index.ts";
import { traceRotary } from "../passes/attention/rotary-embedding.ts";
import { maxDifference, prefillAndDecode } from "./helpers/two-step-parity.ts";
import { modelBytes } from "./helpers/ort-parity.ts";
import { HAVE_MATRIX, MATRIX_DIR, matrixFixtures, type MatrixExpected } from "./helpers/export-matrix.ts";
import { greedyReference } from "./helpers/reference-loop.ts";

const fixtures = matrixFixtures();

interface Expected extends MatrixExpected {
  config: {
    model_type: string;
    heads: number;
    kv_heads: number;
    head_dim: number;
    position_embedding?: string;
    query_pre_attn_scalar?: number | null;
    attn_logit_softcapping?: number | null;
    /** Whether the export holds the soft cap (transformers' sdpa path drops it); older fixtures: only eager does. */
    attn_logit_softcapping_in_graph?: boolean;
  };
  max_new_tokens: number;
  prompts: { input_ids: number[]; greedy: number[] }[];
}

/** transformers' Gemma2Config.query_pre_attn_scalar default (the scale is its -1/2 power), for fixtures that do not record it. */
const GEMMA2_QUERY_PRE_ATTN_SCALAR = 256;

function expectedScale(c: Expected["config"]): number {
  return (c.query_pre_attn_scalar ?? (c.model_type === "gemma2" ? GEMMA2_QUERY_PRE_ATTN_SCALAR : c.head_dim)) ** -0.5;
}

/** Logits of lift + lower against the original, over a prefill and a decode step (float32 exports). */
const LOGITS_TOLERANCE = 1e-4;

interface Row {
  fixture: string;
  expected: Expected;
  found?: number;
  liftLower?: string;
}
const rows = new Map<string, Row>();
const scratch = mkdtempSync(join(tmpdir(), "pipec-matrix-"));

afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
  if (rows.size === 0) return;
  const lines = ["| architecture | implementation | exporter | optimiser | layers found / expected | lift + lower |", "|---|---|---|---|---|---|"];
  for (const { expected: e, found, liftLower } of [...rows.values()].sort((a, b) => a.fixture.localeCompare(b.fixture))) {
    lines.push(`| ${e.arch} | ${e.impl} | ${e.exporter} | ${e.optimiser ?? "none"} | ${found ?? "?"} / ${e.expected_attention_layers} | ${liftLower ?? "not run"} |`);
  }
  console.log(`export matrix recognition (${rows.size} fixtures):\n${lines.join("\n")}`);
});

describe.skipIf(!HAVE_MATRIX)(`attention recognition on the export matrix (${HAVE_MATRIX ? `${fixtures.length} fixtures` : "test/fixtures/export-matrix absent: skipped"})`, () => {
  for (const fixture of fixtures) {
    it(fixture, async () => {
      const dir = join(MATRIX_DIR, fixture);
      const expected = JSON.parse(readFileSync(join(dir, "expected.json"), "utf8")) as Expected;
      const row: Row = { fixture, expected };
      rows.set(fixture, row);
      const c = expected.config;

      const model = loadModel(join(dir, "model.onnx"));
      const report = findAttentionBlocks(model);
      row.found = report.layers.length;
      expect(report.unrecognised.map((u) => `${u.node}: ${u.reason}`)).toEqual([]);
      expect(report.layers.length).toBe(expected.expected_attention_layers);
      const scale = expectedScale(c);
      report.layers.forEach((l, i) => {
        expect({ layer: l.layer, heads: l.num_heads, kvHeads: l.kv_num_heads }).toEqual({ layer: i, heads: c.heads, kvHeads: c.kv_heads });
        expect(l.scale).toBeCloseTo(scale, 6);
        const capped = c.attn_logit_softcapping_in_graph ?? expected.impl === "eager";
        expect(l.softcap ?? null).toBe(capped ? (c.attn_logit_softcapping ?? null) : null);
        expect([l.past_key, l.past_value, l.present_key, l.present_value]).toEqual([`past_key_values.${i}.key`, `past_key_values.${i}.value`, `present.${i}.key`, `present.${i}.value`]);
      });

      const before = await prefillAndDecode(modelBytes(model));
      expect(liftAttention(model).rewrites).toBe(expected.expected_attention_layers);
      const rotary = c.position_embedding === "rotary";
      for (const node of model.graph.nodeArray().filter(isCanonical)) {
        const forms = [node.inputs[0]!, newRows(node.inputs[1]!)].map((x) => {
          const t = traceRotary(x);
          return "reason" in t ? `unrecognised: ${t.reason}` : (t.rotary ?? "none");
        });
        if (rotary) expect(forms.filter((f) => f === "none" || f.startsWith("unrecognised"))).toEqual([]);
        else expect(forms).toEqual(["none", "none"]);
        expect(readCanonical(node).kv_num_heads).toBe(c.kv_heads);
      }
      expect(lowerAttention(model)).toBe(expected.expected_attention_layers);
      const after = await prefillAndDecode(modelBytes(model));
      const difference = maxDifference(before, after);
      expect(difference).toBeLessThanOrEqual(LOGITS_TOLERANCE);

      const rewritten = join(scratch, fixture, "model.onnx");
      saveModel(model, rewritten);
      const { input_ids } = expected.prompts[0]!;
      const original = await greedyReference(join(dir, "model.onnx"), input_ids, expected.max_new_tokens);
      expect(await greedyReference(rewritten, input_ids, expected.max_new_tokens)).toEqual(original);
      row.liftLower = `exact (max logit difference ${difference.toExponential(1)}, ${expected.max_new_tokens} greedy tokens equal)`;
    });
  }
});

/** The rows a step adds to the cache: the last input of the Concat that grows it, else the keys themselves. */
function newRows(key: Value): Value {
  const p = key.producer;
  return p?.op === "Concat" && p.inputs.length === 2 ? p.inputs[1]! : key;
}
