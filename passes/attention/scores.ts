import { DataType } from "../../graph/ir/dtype.ts";
import type { Node } from "../../graph/ir/node.ts";
import type { Value } from "../../graph/ir/value.ts";
import { dtypeOf } from "./ops.ts";
import { peelScale, scalarValue } from "./peel.ts";

/** How the mask enters the scores: added, or chosen by Where (visible: true attends; hidden: true masks). */
export type ScoreMaskKind = "add" | "where" | "whereInverted";

/** What lies between Q.K^T and Softmax, walked back from the Softmax input. */
export interface ScoreChain {
  /** The MatMul(Q, K^T). */
  qk: Node;
  /** Product of every scale on the scores. */
  factor: number;
  /** cap * tanh(scores / cap) between the scale and the mask (Gemma 2). */
  softcap?: number;
  mask?: {
    value: Value;
    kind: ScoreMaskKind;
    /** The scales applied after the mask: an additive mask is multiplied by it in the canonical form. */
    factorAfter: number;
  };
}

const FLOATS = new Set<number>([DataType.FLOAT, DataType.FLOAT16, DataType.BFLOAT16, DataType.DOUBLE]);

/** Large negative fills count as masking (exp of them is 0 next to any real score). */
const MASKING_FILL = -1e4;

/**
 * The scores before Softmax, taken apart whatever order the exporter wrote them in: scales (Mul
 * or Div by a constant scalar, on either side of the mask), float casts (a float16 model's
 * float32 Softmax), one mask (Add, either operand order; Where with a large negative fill, either
 * branch), a soft cap before the mask, down to MatMul(Q, K^T).
 */
export function peelScores(logits: Value): ScoreChain | string {
  let v = logits;
  let factor = 1;
  let factorAfter = 1;
  let mask: ScoreChain["mask"];
  let softcap: number | undefined;
  for (let step = 0; step < 32; step++) {
    const p = v.producer;
    if (!p || p.domain !== "") break;
    if (p.op === "MatMul") return { qk: p, factor, softcap, mask: mask && { ...mask, factorAfter } };
    const capped = cappedScores(p);
    if (capped) {
      if (softcap !== undefined) return "the scores are capped twice";
      if (factor !== 1) return "the capped scores are scaled again";
      [v, softcap] = [capped.scores, capped.cap];
      continue;
    }
    if ((p.op === "Cast" || p.op === "Identity") && isFloat(p.inputs[0]) && isFloat(v)) {
      v = p.inputs[0]!;
      continue;
    }
    const scaled = peelScale(v);
    if (scaled.base !== v) {
      if (!(scaled.factor > 0)) return `the scores are scaled by ${scaled.factor}, not a positive constant`;
      factor *= scaled.factor;
      if (!mask) factorAfter *= scaled.factor;
      v = scaled.base;
      continue;
    }
    if (p.op === "Add" || p.op === "Where") {
      if (mask) return `a second mask (${p.describe()}) on the scores`;
      if (softcap !== undefined) return "the scores are masked before they are capped";
      const found = p.op === "Add" ? additiveMask(p) : booleanMask(p);
      if (typeof found === "string") return found;
      mask = { value: found.mask, kind: found.kind, factorAfter: 1 };
      v = found.scores;
      continue;
    }
    break;
  }
  const p = v.producer;
  return `the scores before Softmax come from ${p ? p.describe() : `input ${v.name}`}, not MatMul(Q, K^T)`;
}

/** Mul(Tanh(scores / cap), cap), either operand order, the division spelled as any scale by 1/cap. */
function cappedScores(mul: Node): { scores: Value; cap: number } | undefined {
  if (mul.op !== "Mul") return undefined;
  const [a, b] = mul.inputs as [Value, Value];
  const [tanh, cap] = a.producer?.op === "Tanh" ? [a.producer, scalarValue(b)] : b.producer?.op === "Tanh" ? [b.producer, scalarValue(a)] : [undefined, undefined];
  if (!tanh || cap === undefined || !(cap > 0)) return undefined;
  const inner = peelScale(tanh.inputs[0]!);
  return Math.abs(inner.factor * cap - 1) < 1e-6 ? { scores: inner.base, cap } : undefined;
}

/** Add(scores, mask) or Add(mask, scores): the side that leads on to a MatMul is the scores. */
function additiveMask(add: Node): { scores: Value; mask: Value; kind: ScoreMaskKind } | string {
  const [a, b] = add.inputs as [Value, Value];
  if (typeof peelScores(a) !== "string") return { scores: a, mask: b, kind: "add" };
  if (typeof peelScores(b) !== "string") return { scores: b, mask: a, kind: "add" };
  return `neither operand of ${add.describe()} leads to MatMul(Q, K^T)`;
}

function booleanMask(where: Node): { scores: Value; mask: Value; kind: ScoreMaskKind } | string {
  const [condition, ifTrue, ifFalse] = where.inputs as [Value, Value, Value];
  if ((scalarValue(ifFalse) ?? 0) <= MASKING_FILL) return { scores: ifTrue, mask: condition, kind: "where" };
  if ((scalarValue(ifTrue) ?? 0) <= MASKING_FILL) return { scores: ifFalse, mask: condition, kind: "whereInverted" };
  return `${where.describe()} fills masked scores with something other than a large negative constant`;
}

function isFloat(v: Value | undefined): boolean {
  const dtype = dtypeOf(v);
  return dtype !== undefined && FLOATS.has(dtype);
}
