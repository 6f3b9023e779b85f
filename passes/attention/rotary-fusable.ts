import { DataType } from "../../graph/ir/dtype.ts";
import type { Node } from "../../graph/ir/node.ts";
import type { Tensor } from "../../graph/ir/tensor.ts";
import type { Value } from "../../graph/ir/value.ts";
import { constantInts, constantTensor } from "../../graph/rewrite/index.ts";
import { dtypeOf } from "./ops.ts";

/** Slice ends at or past this reach the end of the axis (exporters write INT64_MAX, INT32_MAX or 2^53-1). */
export const TO_THE_END = 2 ** 31 - 1;

/**
 * A full-width float32 rotary embedding of [B, H, S, D] rows spelled in standard ops (the
 * "decomposed" form of rotary-embedding.ts), in a form onnxruntime's fused
 * com.microsoft.RotaryEmbedding computes exactly, given tables [positions, D/2]:
 * - HF's rotate_half, `x * cos + concat(-x[..., h:], x[..., :h]) * sin`, with full-width cos and
 *   sin whose two halves are equal (HF's `cat(freqs, freqs)`): the tables are their first halves;
 * - GPT-J's rotate_every_two, `x * cos + pairs(-x[..., 1::2], x[..., 0::2]) * sin` (Unsqueeze,
 *   Concat, Reshape), with cos and sin tables whose lane pairs are equal: the even lanes;
 * - the pairwise form lift-attention writes for fused ops that rotated by themselves
 *   (passes/attention/rotary.ts), `(x1 cos - x2 sin, x2 cos + x1 sin)` on half-width cos and sin,
 *   x1/x2 the two halves (`interleaved`: the even and odd lanes): the tables are cos and sin.
 */
export interface FusedRotary {
  cos: Value;
  sin: Value;
  interleaved: boolean;
  /** The lanes of cos and sin that are the fused op's tables: all (half-width already), the even ones, or the first h (h = D/2 as the model computes it, int64 [1]). */
  lanes: "all" | "even" | { first: Value };
}

/**
 * The fusable rotary that produced `rotated` from `unrotated` ([B, H, S, D]), or undefined for any
 * other form (partial rotary, float16, full-width tables whose lanes cannot be told equal),
 * which keeps the rotation spelled in standard ops.
 * `angles`: whether a value is position-only (cos or sin; PositionFlow.angles, positions.ts).
 */
export function fusedRotaryOf(rotated: Value, unrotated: Value, angles: (v: Value) => boolean): FusedRotary | undefined {
  if (dtypeOf(rotated) !== DataType.FLOAT) return undefined;
  return rotateHalfOf(rotated, unrotated, angles) ?? rotateEveryTwoOf(rotated, unrotated, angles) ?? pairwiseOf(rotated, unrotated, angles);
}

/** `x * cos + concat(-x[..., h:], x[..., :h]) * sin`, cos and sin with equal halves. */
function rotateHalfOf(rotated: Value, x: Value, angles: (v: Value) => boolean): FusedRotary | undefined {
  for (const { cos, withSin } of cosSinTerms(rotated, x, angles)) {
    const swapped = standard(withSin.rows.producer, "Concat");
    if (!swapped || swapped.inputs.length !== 2 || !lastAxis(swapped.attrInt("axis"))) continue;
    const high = sliceOf(standard(swapped.inputs[0]?.producer, "Neg")?.inputs[0], x);
    const low = sliceOf(swapped.inputs[1], x);
    if (!high || !low || !halves(low, high) || !equalLanes(cos.angle, "halves") || !equalLanes(withSin.angle, "halves")) continue;
    return { cos: cos.angle, sin: withSin.angle, interleaved: false, lanes: { first: low.end } };
  }
  return undefined;
}

/** `x * cos + pairs(-x[..., 1::2], x[..., 0::2]) * sin`, cos and sin with equal lane pairs. */
function rotateEveryTwoOf(rotated: Value, x: Value, angles: (v: Value) => boolean): FusedRotary | undefined {
  for (const { cos, withSin } of cosSinTerms(rotated, x, angles)) {
    const pairs = standard(withSin.rows.producer, "Reshape");
    const join = standard(pairs?.inputs[0]?.producer, "Concat");
    if (!pairs || constantInts(pairs.inputs[1])?.join() !== "0,0,0,-1" || !join || join.inputs.length !== 2 || !lastAxis(join.attrInt("axis"), 5)) continue;
    const odd = sliceOf(standard(lastUnsqueezed(join.inputs[0])?.producer, "Neg")?.inputs[0], x);
    const even = sliceOf(lastUnsqueezed(join.inputs[1]), x);
    if (!odd || !even || !evenAndOdd(even, odd) || !equalLanes(cos.angle, "pairs") || !equalLanes(withSin.angle, "pairs")) continue;
    return { cos: cos.angle, sin: withSin.angle, interleaved: true, lanes: "even" };
  }
  return undefined;
}

/** The ways `rotated = Add(x * cos, mixed * sin)` splits into its two products (either operand order). */
function* cosSinTerms(rotated: Value, x: Value, angles: (v: Value) => boolean): Generator<{ cos: { rows: Value; angle: Value }; withSin: { rows: Value; angle: Value } }> {
  const add = standard(rotated.producer, "Add");
  if (!add) return;
  for (const [plain, mixed] of [[0, 1], [1, 0]] as const) {
    const cos = productOf(add.inputs[plain], angles);
    const withSin = productOf(add.inputs[mixed], angles);
    if (cos?.rows === x && withSin) yield { cos, withSin };
  }
}

/** `(x1 cos - x2 sin, x2 cos + x1 sin)` joined as halves, or as lane pairs (Unsqueeze, Concat, Reshape to [B, H, S, D]). */
function pairwiseOf(rotated: Value, x: Value, angles: (v: Value) => boolean): FusedRotary | undefined {
  const pairs = standard(rotated.producer, "Reshape");
  const interleaved = !!pairs;
  const join = standard((pairs ? pairs.inputs[0] : rotated)?.producer, "Concat");
  if (!join || join.inputs.length !== 2 || !lastAxis(join.attrInt("axis"), pairs ? 5 : 4)) return undefined;
  if (pairs && constantInts(pairs.inputs[1])?.join() !== "0,0,0,-1") return undefined;
  const [first, second] = join.inputs.map((v) => (pairs ? lastUnsqueezed(v) : v));
  const sub = standard(first?.producer, "Sub");
  const add = standard(second?.producer, "Add");
  if (!sub || !add) return undefined;
  const [x1cos, x2sin] = sub.inputs.map((v) => productOf(v, angles));
  const [a, c] = add.inputs.map((v) => productOf(v, angles));
  if (!x1cos || !x2sin || !a || !c) return undefined;
  const [x2cos, x1sin] = a.angle === x1cos.angle ? [a, c] : [c, a];
  if (x2cos.angle !== x1cos.angle || x1sin.angle !== x2sin.angle || x2cos.rows !== x2sin.rows || x1sin.rows !== x1cos.rows) return undefined;
  const x1 = sliceOf(x1cos.rows, x), x2 = sliceOf(x2cos.rows, x);
  if (!x1 || !x2) return undefined;
  const lanes = interleaved ? evenAndOdd(x1, x2) : halves(x1, x2);
  return lanes ? { cos: x1cos.angle, sin: x2sin.angle, interleaved, lanes: "all" } : undefined;
}

interface LaneSlice {
  start: Value;
  end: Value;
  step: number;
}

/** x1 = x[..., :h], x2 = x[..., h:]. */
function halves(x1: LaneSlice, x2: LaneSlice): boolean {
  return x1.step === 1 && x2.step === 1 && constantInts(x1.start)?.[0] === 0 && sameInt(x1.end, x2.start) && reachesEnd(x2.end, x1.end);
}

/** x1 = x[..., 0::2], x2 = x[..., 1::2]. */
function evenAndOdd(x1: LaneSlice, x2: LaneSlice): boolean {
  return x1.step === 2 && x2.step === 2 && constantInts(x1.start)?.[0] === 0 && constantInts(x2.start)?.[0] === 1 && reachesEnd(x1.end) && reachesEnd(x2.end);
}

function standard(node: Node | undefined, op: string): Node | undefined {
  return node?.op === op && node.domain === "" ? node : undefined;
}

/** `v` = rows * angle (a two-input Mul, either order). */
function productOf(v: Value | undefined, angles: (v: Value) => boolean): { rows: Value; angle: Value } | undefined {
  const mul = standard(v?.producer, "Mul");
  if (!mul || mul.inputs.length !== 2) return undefined;
  const [a, c] = mul.inputs as [Value | undefined, Value | undefined];
  if (!a || !c || angles(a) === angles(c)) return undefined;
  return angles(c) ? { rows: a, angle: c } : { rows: c, angle: a };
}

/** The input of an Unsqueeze that adds a last axis to a rank-4 value. */
function lastUnsqueezed(v: Value | undefined): Value | undefined {
  const unsqueeze = standard(v?.producer, "Unsqueeze");
  const axes = unsqueeze && (unsqueeze.inputs[1] ? constantInts(unsqueeze.inputs[1]) : unsqueeze.attrInts("axes"));
  return axes?.length === 1 && lastAxis(axes[0], 5) ? unsqueeze!.inputs[0] : undefined;
}

/** The last axis of a value of `rank`. */
function lastAxis(axis: number | undefined, rank = 4): boolean {
  return axis === -1 || axis === rank - 1;
}

/** x[..., start:end:step] of `of` on the last axis (opset 10+ Slice, bounds as inputs). */
function sliceOf(v: Value | undefined, of: Value): LaneSlice | undefined {
  const slice = standard(v?.producer, "Slice");
  if (!slice || slice.inputs[0] !== of || slice.inputs.length < 4) return undefined;
  const [, start, end, axes, steps] = slice.inputs;
  const axis = constantInts(axes);
  const step = steps ? constantInts(steps) : [1];
  if (!start || !end || axis?.length !== 1 || !lastAxis(axis[0]) || step?.length !== 1) return undefined;
  return { start, end, step: step[0]! };
}

/** The same integer: equal constants, one value, or Unsqueezes of one value (torch writes `x.shape[-1] // 2` once per use). */
function sameInt(a: Value, c: Value): boolean {
  if (a === c) return true;
  const [ka, kc] = [constantInts(a), constantInts(c)];
  if (ka && kc) return ka.join() === kc.join();
  const [ua, uc] = [standard(a.producer, "Unsqueeze"), standard(c.producer, "Unsqueeze")];
  return !!ua && !!uc && ua.inputs[0] === uc.inputs[0] && constantInts(ua.inputs[1])?.join() === constantInts(uc.inputs[1])?.join() && ua.attrInts("axes")?.join() === uc.attrInts("axes")?.join();
}

/** `end` reaches the end of the axis, or is 2h for a constant h. */
function reachesEnd(end: Value, half?: Value): boolean {
  const e = constantInts(end)?.[0];
  const h = half && constantInts(half)?.[0];
  return e !== undefined && (e >= TO_THE_END || (h !== undefined && e === 2 * h));
}

/** Ops through which equal lanes stay equal (a trailing axis of 1 is equal lanes too, broadcast). */
const LANES_KEPT = new Set(["Cos", "Sin", "Cast", "Identity", "Neg", "Unsqueeze", "Expand", "Mul", "Div", "Add", "Sub"]);

/**
 * Whether the angle value `v` has equal lanes on its last axis, its two halves or each even lane
 * and the next: a table whose rows do, gathered at positions; `concat(t, t)` on the last axis
 * (halves); or either carried through elementwise ops (with scalar constants).
 */
function equalLanes(v: Value, which: "halves" | "pairs", depth = 0): boolean {
  const p = v.producer;
  if (!p || p.domain !== "" || depth > 12) return false;
  if (p.op === "Concat") return which === "halves" && lastAxis(p.attrInt("axis")) && p.inputs.length === 2 && p.inputs[0] === p.inputs[1];
  if (p.op === "Gather") {
    const table = constantTensor(p.inputs[0]);
    return (p.attrInt("axis") ?? 0) === 0 && !!table && tableLanesEqual(table, which);
  }
  if (!LANES_KEPT.has(p.op)) return false;
  const operands = ["Unsqueeze", "Expand"].includes(p.op) ? [p.inputs[0]] : p.inputs;
  return operands.every((i) => !!i && (constantTensor(i)?.elementCount === 1 || equalLanes(i, which, depth + 1)));
}

/** Each row of a [P, D] table has equal halves, or equal lane pairs (2i, 2i+1). */
function tableLanesEqual(table: Tensor, which: "halves" | "pairs"): boolean {
  const dims = table.dims;
  if (dims.length !== 2 || dims[1]! % 2 !== 0) return false;
  const values = table.toArray();
  const [rows, D] = dims as [number, number];
  const [lane, partner] = which === "halves" ? [(i: number) => i, (i: number) => i + D / 2] : [(i: number) => 2 * i, (i: number) => 2 * i + 1];
  for (let r = 0; r < rows; r++) for (let i = 0; i < D / 2; i++) if (values[r * D + lane(i)] !== values[r * D + partner(i)]) return false;
  return true;
}

