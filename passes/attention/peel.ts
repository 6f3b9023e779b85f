import { constantTensor } from "../../compiler/rewrite/index.ts";
import { DataType } from "../../compiler/ir/dtype.ts";
import type { Value } from "../../compiler/ir/value.ts";
import { shapeOf } from "./ops.ts";

/**
 * Undoing what exporters wrap around Q, K and V in decomposed attention, one algebraic step at a
 * time, so recognition does not depend on one exporter's node chain.
 */

/** A scalar constant's value (a one-element initializer or Constant), else undefined. */
export function scalarConstant(v: Value | undefined): number | undefined {
  const t = v && constantTensor(v);
  if (!t || t.dims.reduce((a, d) => a * d, 1) !== 1) return undefined;
  const raw = Number(t.toArray()[0]);
  return t.dtype === DataType.FLOAT16 ? halfToFloat(raw) : raw;
}

function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

/** x * c or x / c with a scalar constant c (either operand order for Mul): returns x and the factor. */
export function peelScale(v: Value): { base: Value; factor: number } {
  const p = v.producer;
  if (p && (p.op === "Mul" || p.op === "Div") && p.domain === "" && v.uses.length === 1) {
    const [a, b] = p.inputs;
    const right = scalarConstant(b);
    if (a && right !== undefined) return { base: a, factor: p.op === "Mul" ? right : 1 / right };
    const left = scalarConstant(a);
    if (p.op === "Mul" && b && left !== undefined) return { base: b, factor: left };
  }
  return { base: v, factor: 1 };
}

/** K^T [B, H, D, N] back to K: `Transpose(K, [0,1,3,2])`, or the folded `Transpose(K_BNHD, [0,2,3,1])`. */
export function peelKeyTranspose(keyT: Value): { key: Value; layout: "BHND" | "BNHD" } | string {
  const p = keyT.producer;
  if (p?.op !== "Transpose") return `the second operand of Q.K^T is not a Transpose of K but ${p ? p.describe() : keyT.name}`;
  const perm = p.attrInts("perm")?.join(",");
  if (perm === "0,1,3,2") return { key: p.inputs[0]!, layout: "BHND" };
  if (perm === "0,2,3,1") return { key: p.inputs[0]!, layout: "BNHD" };
  return `K is transposed with perm [${perm}], neither [0,1,3,2] nor [0,2,3,1]`;
}

/**
 * Repeat-KV (GQA): [B, Hkv, N, D] -> [B, Hkv*G, N, D] with every KV head repeated G times in a
 * row, spelled Reshape(Expand|Tile(x5)) where x5 is x with a unit axis 2: Unsqueeze(x, 2) or a
 * Reshape to [B, Hkv, 1, N, D]. Returns x, or v itself when not repeated.
 */
export function peelRepeatKv(v: Value): Value | string {
  const reshape = v.producer;
  if (reshape?.op !== "Reshape") return v;
  const grow = reshape.inputs[0]?.producer;
  if (grow?.op !== "Expand" && grow?.op !== "Tile") return v;
  const withUnitAxis = grow.inputs[0]!;
  const spread = withUnitAxis.producer;
  if (spread?.op === "Reshape" && rank(spread.inputs[0]!) === 4) {
    const target = constantTensor(spread.inputs[1]!)?.toArray();
    if (target?.length === 5 && Number(target[2]) === 1) return spread.inputs[0]!;
    return `repeat-KV reshapes to [${target ? [...target].join(", ") : "?"}], not [B, Hkv, 1, N, D]`;
  }
  if (spread?.op !== "Unsqueeze") return `repeat-KV ${grow.describe()} reads neither an Unsqueeze nor a 5-D Reshape`;
  const axes = spread.attrInts("axes") ?? constantTensor(spread.inputs[1]!)?.toArray();
  const axis = axes && axes.length === 1 ? Number(axes[0]) : undefined;
  if (axis !== 2 && axis !== -3) return `repeat-KV unsqueezes axis ${axes ? [...axes].join(",") : "?"}, not 2: heads would not repeat in a row`;
  return spread.inputs[0]!;
}

export function rank(v: Value): number | undefined {
  return shapeOf(v)?.length;
}

/** [B*H, S, D] made by reshaping [B, H, S, D]: returns the 4-D value, or a reason. */
export function peelHeadMerge(v: Value, what: string): Value | string {
  const p = v.producer;
  const source = p?.op === "Reshape" ? p.inputs[0] : undefined;
  if (!source || rank(source) !== 4) return `${what} is 3-D but not a reshape of a 4-D [B, H, S, D] value`;
  return source;
}

/** K^T in 3-D, [B*H, D, N] = Transpose([B*H, N, D], [0,2,1]), back to the 4-D K. */
export function peelMergedKeyTranspose(keyT: Value): Value | string {
  const p = keyT.producer;
  if (p?.op !== "Transpose" || p.attrInts("perm")?.join(",") !== "0,2,1") return "the 3-D second operand of Q.K^T is not a Transpose of K with perm [0,2,1]";
  return peelHeadMerge(p.inputs[0]!, "K");
}
