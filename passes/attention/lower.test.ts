import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { Builder } from "../../graph/ir/builder.ts";
import { DataType } from "../../graph/ir/dtype.ts";
import { Model } from "../../graph/ir/model.ts";
import { tensorType, type Dim } from "../../graph/ir/types.ts";
import { rng } from "../../test/helpers/ort-inputs.ts";
import { modelBytes } from "../../test/helpers/ort-parity.ts";
import { CANONICAL_DOMAIN } from "./canonical.ts";
import { emitCanonical } from "./canonical-node.ts";
import { lowerAttention } from "./lower.ts";

// B=2, H=4 query heads over Hkv=2 KV heads, T=2 queries at the end of N=5 keys, D=4.
const [B, H, HKV, T, N, D] = [2, 4, 2, 2, 5, 4];
const SCALE = 0.3;

type MaskCase = { kind: "none" } | { kind: "boolean"; visible: boolean[] } | { kind: "additive"; bias: number[] };

/** A model holding one canonical node over graph inputs q, k, v (and mask), lowered. */
function loweredModel(causal: boolean, mask: MaskCase, kvHeadSize: Dim = D): Model {
  const model = new Model({ opsets: { "": 18, [CANONICAL_DOMAIN]: 1 } });
  const b = new Builder(model.graph);
  const f = DataType.FLOAT;
  const maskValue = mask.kind === "none" ? undefined : b.input("mask", mask.kind === "boolean" ? DataType.BOOL : f, [B, 1, T, N]);
  const out = emitCanonical(
    b,
    { query_BHTD: b.input("q", f, [B, H, T, D]), key_BHkvND: b.input("k", f, [B, HKV, N, kvHeadSize]), value_BHkvND: b.input("v", f, [B, HKV, N, kvHeadSize]), mask: maskValue },
    { scale: SCALE, num_heads: H, kv_num_heads: HKV, is_causal: causal ? 1 : 0, mask_kind: mask.kind === "none" ? undefined : mask.kind, layer: 0, source_form: "test" },
  );
  b.output(out, "out", tensorType(f, [B, H, T, D]));
  expect(lowerAttention(model)).toBe(1);
  expect(model.opset(CANONICAL_DOMAIN)).toBeUndefined();
  return model;
}

/** The contract of canonical.ts, written out in plain loops. */
function reference(q: Float32Array, k: Float32Array, v: Float32Array, causal: boolean, mask: MaskCase): Float32Array {
  const out = new Float32Array(B * H * T * D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / (H / HKV));
      for (let t = 0; t < T; t++) {
        const scores: number[] = [];
        for (let n = 0; n < N; n++) {
          let s = 0;
          for (let d = 0; d < D; d++) s += q[((b * H + h) * T + t) * D + d]! * k[((b * HKV + kvh) * N + n) * D + d]!;
          s *= SCALE;
          const m = (b * T + t) * N + n;
          if (mask.kind === "additive") s += mask.bias[m]!;
          const hidden = (mask.kind === "boolean" && !mask.visible[m]) || (causal && n > N - T + t);
          scores.push(hidden ? -Infinity : s);
        }
        const max = Math.max(...scores);
        const weights = scores.map((s) => Math.exp(s - max));
        const total = weights.reduce((a, w) => a + w, 0);
        for (let d = 0; d < D; d++) {
          let acc = 0;
          for (let n = 0; n < N; n++) acc += (weights[n]! / total) * v[((b * HKV + kvh) * N + n) * D + d]!;
          out[((b * H + h) * T + t) * D + d] = acc;
        }
      }
    }
  }
  return out;
}

async function expectMatchesReference(causal: boolean, mask: MaskCase, kvHeadSize: Dim = D): Promise<void> {
  const next = rng(11);
  const random = (n: number) => Float32Array.from({ length: n }, () => next() * 2 - 1);
  const [q, k, v] = [random(B * H * T * D), random(B * HKV * N * D), random(B * HKV * N * D)];
  const feeds: Record<string, ort.Tensor> = {
    q: new ort.Tensor("float32", q, [B, H, T, D]),
    k: new ort.Tensor("float32", k, [B, HKV, N, D]),
    v: new ort.Tensor("float32", v, [B, HKV, N, D]),
  };
  if (mask.kind === "boolean") feeds["mask"] = new ort.Tensor("bool", Uint8Array.from(mask.visible, Number), [B, 1, T, N]);
  if (mask.kind === "additive") feeds["mask"] = new ort.Tensor("float32", Float32Array.from(mask.bias), [B, 1, T, N]);
  const session = await ort.InferenceSession.create(modelBytes(loweredModel(causal, mask, kvHeadSize)));
  const actual = (await session.run(feeds))["out"]!.data as Float32Array;
  await session.release();
  const expected = reference(q, k, v, causal, mask);
  actual.forEach((x, i) => expect(Math.abs(x - expected[i]!), `element ${i}`).toBeLessThanOrEqual(1e-6));
}

describe("lower-attention", () => {
  // Row-major [B, 1, T, N]: the first batch row hides key 0 from both queries, the second hides key 3.
  const visible = Array.from({ length: B * T * N }, (_, i) => !(i < T * N ? i % N === 0 : i % N === 3));

  it("lowers GQA without a mask", () => expectMatchesReference(false, { kind: "none" }));
  it("lowers causal attention aligned bottom-right (queries at the end of the keys)", () => expectMatchesReference(true, { kind: "none" }));
  it("lowers a boolean mask together with causality", () => expectMatchesReference(true, { kind: "boolean", visible }));
  it("lowers GQA whose head size is only known at run time (K/V target shape read from Shape)", () => expectMatchesReference(true, { kind: "none" }, "head_size"));
  it("repeats K/V heads to a constant target shape when the head size is known (no Shape nodes per step)", () => {
    const ops = (m: Model) => m.graph.nodeArray().map((n) => n.op);
    expect(ops(loweredModel(false, { kind: "none" })).filter((op) => op === "Shape")).toHaveLength(0);
    expect(ops(loweredModel(false, { kind: "none" }, "head_size")).filter((op) => op === "Shape").length).toBeGreaterThan(0);
  });
  it("lowers an additive mask", () => expectMatchesReference(false, { kind: "additive", bias: visible.map((v, i) => (v ? (i % 3) * 0.5 : -1e9)) }));
});
