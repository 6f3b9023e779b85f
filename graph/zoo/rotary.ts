import type { Builder } from "../ir/builder.ts";
import { DataType } from "../ir/dtype.ts";
import type { Value } from "../ir/value.ts";
import type { RotaryLayout } from "./config.ts";

/**
 * cos and sin of position x frequency, [maxPositions, D/2]: the caches GroupQueryAttention and
 * RotaryEmbedding take. Frequency i is theta^(-2i/D); computed in float32 as llama2.c does.
 */
export function rotaryHalfTables(headDim: number, maxPositions: number, theta: number): { cos: Float32Array; sin: Float32Array } {
  const half = headDim / 2;
  const cos = new Float32Array(maxPositions * half);
  const sin = new Float32Array(maxPositions * half);
  for (let p = 0; p < maxPositions; p++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(p * Math.fround(1 / Math.fround(theta ** ((2 * i) / headDim))));
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

/**
 * The same tables widened to [maxPositions, D] in the lane order of `layout`, so that the
 * decomposed form is `x * cos + rotate(x) * sin` lane by lane.
 */
export function rotaryFullTables(headDim: number, maxPositions: number, theta: number, layout: RotaryLayout): { cos: Float32Array; sin: Float32Array } {
  const half = headDim / 2;
  const tables = rotaryHalfTables(headDim, maxPositions, theta);
  const widen = (t: Float32Array) => {
    const out = new Float32Array(maxPositions * headDim);
    for (let p = 0; p < maxPositions; p++) {
      for (let d = 0; d < headDim; d++) out[p * headDim + d] = t[p * half + (layout === "half" ? d % half : d >> 1)];
    }
    return out;
  };
  return { cos: widen(tables.cos), sin: widen(tables.sin) };
}

/** cos/sin rows for each position, [B, 1, S, D], gathered by position_ids as HF exports do. */
export function gatherRotary(b: Builder, positionIds: Value, headDim: number, maxPositions: number, theta: number, layout: RotaryLayout): { cos: Value; sin: Value } {
  const tables = rotaryFullTables(headDim, maxPositions, theta, layout);
  const gather = (t: Float32Array, hint: string) =>
    b.op.Unsqueeze(b.op.Gather(b.constant(DataType.FLOAT, [maxPositions, headDim], t, hint), positionIds), b.int64([1]));
  return { cos: gather(tables.cos, "rotary_cos"), sin: gather(tables.sin, "rotary_sin") };
}

/** Rotates x [B, H, S, D] with Slice/Neg/Concat/Mul/Add, in the layout's lane pairing. */
export function applyRotary(b: Builder, x: Value, rot: { cos: Value; sin: Value }, headDim: number, layout: RotaryLayout): Value {
  const rotated = layout === "half" ? rotateHalf(b, x, headDim) : rotateEveryTwo(b, x);
  return b.op.Add(b.op.Mul(x, rot.cos), b.op.Mul(rotated, rot.sin));
}

/** HF's rotate_half: concat(-x[..., D/2:], x[..., :D/2]). */
function rotateHalf(b: Builder, x: Value, headDim: number): Value {
  const half = headDim / 2;
  const x1 = b.op.Slice(x, b.int64([0]), b.int64([half]), b.int64([-1]));
  const x2 = b.op.Slice(x, b.int64([half]), b.int64([headDim]), b.int64([-1]));
  return b.op.Concat(b.op.Neg(x2), x1, { axis: -1 });
}

/** GPT-J's rotate_every_two: lanes (2i, 2i+1) become (-x[2i+1], x[2i]). */
function rotateEveryTwo(b: Builder, x: Value): Value {
  const big = Number.MAX_SAFE_INTEGER;
  const even = b.op.Slice(x, b.int64([0]), b.int64([big]), b.int64([-1]), b.int64([2]));
  const odd = b.op.Slice(x, b.int64([1]), b.int64([big]), b.int64([-1]), b.int64([2]));
  const pairs = b.op.Concat(b.op.Unsqueeze(b.op.Neg(odd), b.int64([-1])), b.op.Unsqueeze(even, b.int64([-1])), { axis: -1 }); // [B, H, S, D/2, 2]
  return b.op.Reshape(pairs, b.int64([0, 0, 0, -1]));
}
