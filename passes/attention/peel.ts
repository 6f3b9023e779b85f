import { constantTensor } from "../../graph/rewrite/index.ts";
import { DataType } from "../../graph/ir/dtype.ts";
import type { Node } from "../../graph/ir/node.ts";
import type { Dim } from "../../graph/ir/types.ts";
import type { Value } from "../../graph/ir/value.ts";
import { dtypeOf, shapeOf } from "./ops.ts";

/**
 * Undoing what exporters wrap around Q, K and V in decomposed attention, one algebraic step at a
 * time and in whatever order they come, so recognition does not depend on one exporter's node
 * chain: a scale may sit on Q, on K before or after its transpose, or be split between them; a
 * cast may be a no-op; K^T may be one Transpose or a flatten / swap / unflatten; K and V may be
 * repeated for GQA before or after the transpose.
 */

/** A scalar constant's value (a one-element initializer or Constant), else undefined. */
export function scalarConstant(v: Value | undefined): number | undefined {
  const t = v && constantTensor(v);
  if (!t || t.dims.reduce((a, d) => a * d, 1) !== 1) return undefined;
  const raw = Number(t.toArray()[0]);
  return t.dtype === DataType.FLOAT16 ? halfToFloat(raw) : raw;
}

/**
 * The value of a scalar computed from constants only (Reciprocal, Sqrt, Neg, Cast, Mul, Div, Pow
 * of scalar constants): `Mul(x, Reciprocal(c))` scales x as `Div(x, c)` does.
 */
export function scalarValue(v: Value | undefined, depth = 0): number | undefined {
  const direct = scalarConstant(v);
  if (direct !== undefined || !v?.producer || depth > 8) return direct;
  const p = v.producer;
  if (p.domain !== "") return undefined;
  const arg = (i: number) => scalarValue(p.inputs[i], depth + 1);
  const unary: Record<string, (x: number) => number> = { Reciprocal: (x) => 1 / x, Sqrt: Math.sqrt, Neg: (x) => -x, Cast: (x) => x, Identity: (x) => x };
  const binary: Record<string, (x: number, y: number) => number> = { Mul: (x, y) => x * y, Div: (x, y) => x / y, Pow: (x, y) => x ** y };
  if (unary[p.op] && p.inputs.length === 1) {
    const x = arg(0);
    return x === undefined ? undefined : unary[p.op]!(x);
  }
  if (binary[p.op]) {
    const [x, y] = [arg(0), arg(1)];
    return x === undefined || y === undefined ? undefined : binary[p.op]!(x, y);
  }
  return undefined;
}

function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

/** x * c, c * x or x / c with c a scalar computed from constants: returns x and the factor. */
export function peelScale(v: Value): { base: Value; factor: number } {
  const p = v.producer;
  if (p && (p.op === "Mul" || p.op === "Div") && p.domain === "") {
    const [a, b] = p.inputs;
    const right = scalarValue(b);
    if (a && right !== undefined && !addsAxes(b, a)) return { base: a, factor: p.op === "Mul" ? right : 1 / right };
    const left = scalarValue(a);
    if (p.op === "Mul" && b && left !== undefined && !addsAxes(a, b)) return { base: b, factor: left };
  }
  return { base: v, factor: 1 };
}

/** A one-element `scalar` of more axes than x broadcasts x up: x * scalar is then more than a scale. */
function addsAxes(scalar: Value | undefined, x: Value): boolean {
  const [rs, rx] = [rank(scalar), rank(x)];
  return rs !== undefined && rx !== undefined && rs > rx;
}

/** A Cast or Identity that changes nothing (same dtype in and out): its input. */
export function peelNoOp(v: Value): Value {
  const p = v.producer;
  if (p?.domain === "" && (p.op === "Identity" || (p.op === "Cast" && dtypeOf(p.inputs[0]) !== undefined && dtypeOf(p.inputs[0]) === dtypeOf(v)))) return p.inputs[0]!;
  return v;
}

/** Q or V before no-op casts and scales: returns the operand and the product of the scales. */
export function peelScaleAndCasts(v: Value): { base: Value; factor: number } {
  let factor = 1;
  for (;;) {
    const plain = peelNoOp(v);
    const scaled = peelScale(plain);
    factor *= scaled.factor;
    if (scaled.base === v) return { base: v, factor };
    v = scaled.base;
  }
}

export type KeyLayout = "BHND" | "BNHD";

/** The second operand of Q.K^T undone: K, its layout and the scale it carried. */
export interface PeeledKey {
  key: Value;
  layout: KeyLayout;
  factor: number;
}

/**
 * K^T back to K, peeling in any order scales, no-op casts, repeat-KV (before or after the
 * transpose) and head merges (3-D [B*H, .., ..] attention), with the transpose itself spelled
 *   Transpose(K, [0,1,3,2]) | Transpose(K_BNHD, [0,2,3,1]) | Transpose(K3, [0,2,1]) in 3-D |
 *   Reshape(Transpose(Reshape(K, [B*H, N, D]), [0,2,1]), [B, H, D, N]).
 * The result is 4-D and not repeated (the cache's KV heads).
 */
export function peelKey(keyT: Value): PeeledKey | string {
  let v = keyT;
  let factor = 1;
  let layout: KeyLayout | undefined;
  let repeated = false;
  for (let step = 0; step < 32; step++) {
    const plain = peelScaleAndCasts(v);
    factor *= plain.factor;
    v = plain.base;
    const merged = rank(v) === 3 ? peelHeadMerge(v) : undefined;
    if (merged) {
      v = merged;
      continue;
    }
    if (!layout) {
      const t = peelTranspose(v);
      if (typeof t === "string") return t;
      if (t) {
        [v, layout] = [t.key, t.layout];
        continue;
      }
    }
    // [B, N, H, D] that is itself a Transpose of [B, H, N, D]: back to the heads-first K.
    if (layout === "BNHD" && v.producer?.op === "Transpose" && v.producer.attrInts("perm")?.join(",") === "0,2,1,3") {
      [v, layout] = [v.producer.inputs[0]!, "BHND"];
      continue;
    }
    // A repeat over axis 1 of K^T [B, H, D, N] or K [B, H, N, D] repeats heads; of [B, N, H, D] it would not.
    if (!repeated && layout !== "BNHD" && rank(v) === 4) {
      const base = peelRepeatKv(v);
      if (typeof base === "string") return base;
      if (base !== v) {
        [v, repeated] = [base, true];
        continue;
      }
    }
    break;
  }
  if (!layout) {
    const p = v.producer;
    return `the second operand of Q.K^T is not a transpose of K but ${p ? p.describe() : v.name}`;
  }
  if (rank(v) !== 4) return `K has rank ${rank(v) ?? "unknown"}, not 4`;
  return { key: v, layout, factor };
}

/** One transposition of K's last two axes, or undefined when `v` is not one; a string for a transpose that is not. */
function peelTranspose(v: Value): { key: Value; layout: KeyLayout } | string | undefined {
  const p = v.producer;
  if (p?.op === "Transpose" && p.domain === "") {
    const perm = p.attrInts("perm")?.join(",");
    if (perm === "0,1,3,2") return { key: p.inputs[0]!, layout: "BHND" };
    if (perm === "0,2,3,1") return { key: p.inputs[0]!, layout: "BNHD" };
    if (perm === "0,2,1") {
      const merged = peelHeadMerge(p.inputs[0]!);
      return merged ? { key: merged, layout: "BHND" } : "the 3-D K is transposed but is not a reshape of a 4-D [B, H, N, D] value";
    }
    return `K is transposed with perm [${perm}], neither [0,1,3,2] nor [0,2,3,1]`;
  }
  // Reshape(Transpose(Reshape(K, [B*H, N, D]), [0,2,1]), [B, H, D, N]): the dynamo exporter's K^T.
  if (p?.op === "Reshape" && rank(v) === 4) {
    const swap = p.inputs[0]?.producer;
    if (swap?.op !== "Transpose" || swap.attrInts("perm")?.join(",") !== "0,2,1") return undefined;
    const key = peelHeadMerge(swap.inputs[0]!);
    if (!key) return undefined;
    const [k, t] = [shapeOf(key)!, shapeOf(v)!];
    if (!sameDims([k[0], k[1], k[3], k[2]], t)) return `K^T is unflattened to [${t.join(", ")}], not K's [B, H, D, N]`;
    return { key, layout: "BHND" };
  }
  return undefined;
}

/** [B*H, X, Y] made by reshaping [B, H, X, Y]: the 4-D value, else undefined. */
export function peelHeadMerge(v: Value): Value | undefined {
  const p = v.producer;
  const source = p?.op === "Reshape" && p.domain === "" ? p.inputs[0] : undefined;
  if (!source || rank(source) !== 4 || rank(v) !== 3) return undefined;
  const [s, m] = [shapeOf(source)!, shapeOf(v)!];
  return sameDims(s.slice(2), m.slice(1)) ? source : undefined;
}

/** Dims that are known on both sides agree (unknown ones are not held against a match). */
function sameDims(a: readonly Dim[], b: readonly Dim[]): boolean {
  return a.length === b.length && a.every((d, i) => d === null || d === undefined || b[i] === null || b[i] === undefined || d === b[i]);
}

/**
 * Repeat-KV (GQA): [B, Hkv, X, Y] -> [B, Hkv*G, X, Y] with every KV head repeated G times in a
 * row, spelled Reshape(grow(x5)) where x5 is x with a unit axis 2 (Unsqueeze(x, 2) or a Reshape
 * to [B, Hkv, 1, X, Y]) and grow is Expand, Tile, or a Concat of x5 with itself on axis 2.
 * Returns x, or v itself when not repeated.
 */
export function peelRepeatKv(v: Value): Value | string {
  const reshape = v.producer;
  if (reshape?.op !== "Reshape") return v;
  const grow = reshape.inputs[0]?.producer;
  const withUnitAxis = growsUnitAxis(grow);
  if (!withUnitAxis) return v;
  const spread = withUnitAxis.producer;
  if (spread?.op === "Reshape" && rank(spread.inputs[0]!) === 4) {
    const [x, x5] = [shapeOf(spread.inputs[0])!, shapeOf(withUnitAxis)];
    if (x5?.length === 5 && x5[2] === 1 && sameDims([x[0], x[1], x[2], x[3]], [x5[0], x5[1], x5[3], x5[4]])) return spread.inputs[0]!;
    const target = constantTensor(spread.inputs[1]!)?.toArray();
    if (target?.length === 5 && Number(target[2]) === 1) return spread.inputs[0]!;
    return `repeat-KV reshapes to [${target ? [...target].join(", ") : (x5?.join(", ") ?? "?")}], not [B, Hkv, 1, N, D]`;
  }
  if (spread?.op !== "Unsqueeze") return `repeat-KV ${grow!.describe()} reads neither an Unsqueeze nor a 5-D Reshape`;
  const axes = spread.attrInts("axes") ?? constantTensor(spread.inputs[1]!)?.toArray();
  const axis = axes && axes.length === 1 ? Number(axes[0]) : undefined;
  if (axis !== 2 && axis !== -3) return `repeat-KV unsqueezes axis ${axes ? [...axes].join(",") : "?"}, not 2: heads would not repeat in a row`;
  return spread.inputs[0]!;
}

/** The 5-D value an Expand, a Tile or a self-Concat on axis 2 grows; undefined for anything else. */
function growsUnitAxis(grow: Node | undefined): Value | undefined {
  if (!grow || grow.domain !== "") return undefined;
  if (grow.op === "Expand" || grow.op === "Tile") return grow.inputs[0];
  if (grow.op !== "Concat") return undefined;
  const axis = grow.attrInt("axis");
  const first = grow.inputs[0];
  if ((axis !== 2 && axis !== -3) || !first || rank(first) !== 5 || !grow.inputs.every((x) => x === first)) return undefined;
  return first;
}

/**
 * [B, S, heads*D] made from [B, heads, S, D] by Transpose(perm [0,2,1,3]) then a Reshape that
 * merges the last two axes (a fused op fed a cache grown outside it): the 4-D value, else undefined.
 */
export function peelPackedHeads(v: Value, heads: number): Value | undefined {
  const reshape = v.producer;
  const transpose = reshape?.op === "Reshape" ? reshape.inputs[0]?.producer : undefined;
  if (transpose?.op !== "Transpose" || transpose.attrInts("perm")?.join(",") !== "0,2,1,3" || rank(v) !== 3) return undefined;
  const x = transpose.inputs[0]!;
  const [xs, vs] = [shapeOf(x), shapeOf(v)!];
  if (xs?.length !== 4 || xs[1] !== heads || typeof xs[3] !== "number" || vs[2] !== heads * xs[3]) return undefined;
  return x;
}

export function rank(v: Value | undefined): number | undefined {
  return shapeOf(v)?.length;
}
