import type { Builder } from "../../graph/ir/builder.ts";
import type { Node } from "../../graph/ir/node.ts";
import type { Value } from "../../graph/ir/value.ts";
import { constantInts } from "../../graph/rewrite/index.ts";
import { shapeOf } from "./ops.ts";
import { scalarConstant } from "./peel.ts";
import { decomposedSource } from "./rotary-decomposed.ts";

/**
 * Recognises the rotary position embedding behind a rotated Q or K (a canonical node's input, or
 * a new-rows value), for passes that compare queries or keys across positions (TokenSelect's
 * selection-cache fingerprint, the reference's QUERY_ROTATE) or re-rotate keys at new positions
 * (StreamingLLM, passes/kv/streaming-llm/rotation.ts). Recognised by what the graph computes, not by
 * exporter:
 *   - `RotaryEmbedding` (ONNX 23) and `com.microsoft.RotaryEmbedding`: their input 0, the op
 *     itself carrying the positions and tables;
 *   - "decomposed": a sum (Add/Sub, Concat, Reshape, Unsqueeze, Neg) of products each of which
 *     multiplies lanes of one x (x itself, Slice/Neg/Concat/Reshape of x) by a factor that does
 *     not depend on x (rotary-decomposed.ts). That covers HF's `x*cos + rotate_half(x)*sin` and
 *     GPT-J's every-two pairing as torch.onnx / dynamo / the zoo export them, and the standard-op
 *     rotary the lifter writes out for GroupQueryAttention's do_rotary (passes/attention/rotary.ts);
 *     a partial rotary's pass-through lanes (a Slice of x concatenated unrotated) are allowed.
 *   - "partial": Concat(rotary(Slice(x, 0, k)), Slice(x, k, end)) on the last axis with the first
 *     a fused op (GPT-NeoX's rotary_pct as the exporters and fusers write it): x is the source, but
 *     no single op re-rotates it.
 * Between the rotary and `value` only layout steps may sit (Transpose, Reshape, Squeeze,
 * Unsqueeze, Identity, Cast, Mul/Div by a scalar constant); `replayLayout` applies them to the
 * source, so the result has `value`'s shape and layout.
 */
export type RotaryForm = FusedRotaryForm | "decomposed" | "partial";
export type FusedRotaryForm = "RotaryEmbedding" | "com.microsoft.RotaryEmbedding";

/**
 * What `traceRotary` found, without building anything: the rotary's operand (`source`), its form
 * and the layout steps after it (source side first); a fused form names its op (inputs: x, then
 * positions and cos/sin tables). `rotary` absent: nothing positional lies between the projection
 * and `value` (GPT-2), so `value` is its own source. `reason`: something depends on positions
 * there but no rotary form was recognised.
 */
export type RotaryTrace =
  | FusedRotaryTrace
  | { source: Value; rotary: "decomposed" | "partial"; layout: Node[] }
  | { source: Value; rotary?: undefined }
  | { reason: string };

export type FusedRotaryTrace = { source: Value; rotary: FusedRotaryForm; layout: Node[]; op: Node };

/** `value` before its rotary, laid out as `value`; see `RotaryTrace` for `rotary` and `reason`. */
export type Unrotated = { value: Value; rotary?: RotaryForm } | { reason: string };

/** Builds (before `b`'s insertion point) the un-rotated `value`; see `Unrotated`. */
export function unrotatedSource(b: Builder, value: Value): Unrotated {
  const trace = traceRotary(value);
  if ("reason" in trace) return trace;
  if (!trace.rotary) return { value };
  return { value: replayLayout(b, trace.source, trace.layout), rotary: trace.rotary };
}

/** Finds the rotary behind `value` and the layout steps after it. */
export function traceRotary(value: Value): RotaryTrace {
  const layout: Node[] = [];
  let v = value;
  for (let depth = 0; depth < MAX_LAYOUT_STEPS; depth++) {
    const found = rotaryAt(v, [...layout].reverse());
    if (found) return found;
    const p = v.producer;
    if (!p || !isLayoutStep(p)) break;
    layout.push(p);
    v = p.inputs[dataInput(p)]!;
  }
  const positional = positionalInput(value);
  if (!positional) return { source: value };
  const at = v.producer ? v.producer.describe() : v.name;
  return { reason: `${value.name} depends on ${positional} after its projection, but no rotary form was recognised at ${at}` };
}

/** Copies of the `layout` steps (source side first) applied to `x`, built with `b`. */
export function replayLayout(b: Builder, x: Value, layout: readonly Node[]): Value {
  for (const step of layout) {
    const inputs = step.inputs.map((v, i) => (i === dataInput(step) ? x : v));
    const copy = b.node(step.op, inputs, { domain: step.domain });
    for (const a of step.attributes.values()) copy.setAttribute(a);
    x = copy.output(0);
  }
  return x;
}

const MAX_LAYOUT_STEPS = 16;

function isLayoutStep(n: Node): boolean {
  if (n.domain !== "" && n.domain !== "ai.onnx") return false;
  if (["Transpose", "Reshape", "Squeeze", "Unsqueeze", "Identity", "Cast"].includes(n.op)) return true;
  if (n.op !== "Mul" && n.op !== "Div") return false;
  return scalarConstant(n.inputs[1]) !== undefined || (n.op === "Mul" && scalarConstant(n.inputs[0]) !== undefined);
}

/** The input a layout step moves (the others are shapes, axes, factors). */
function dataInput(n: Node): number {
  return n.op === "Mul" && scalarConstant(n.inputs[0]) !== undefined && scalarConstant(n.inputs[1]) === undefined ? 1 : 0;
}

/** The rotary that produced `v`, with `layout` (source side first) after it. */
function rotaryAt(v: Value, layout: Node[]): RotaryTrace | undefined {
  const p = v.producer;
  if (p?.op === "RotaryEmbedding" && (p.domain === "" || p.domain === "ai.onnx" || p.domain === "com.microsoft") && v === p.outputs[0]) {
    return { source: p.inputs[0]!, rotary: p.domain === "com.microsoft" ? "com.microsoft.RotaryEmbedding" : "RotaryEmbedding", layout, op: p };
  }
  const source = decomposedSource(v);
  if (source) return { source, rotary: "decomposed", layout };
  const partial = partialSource(v);
  return partial && { source: partial, rotary: "partial", layout };
}

/** x when `v` is Concat(fused rotary of x's first lanes, x's remaining lanes) on the last axis. */
function partialSource(v: Value): Value | undefined {
  const concat = v.producer;
  const rank = shapeOf(v)?.length;
  if (concat?.op !== "Concat" || concat.inputs.length !== 2 || (concat.attrInt("axis") !== -1 && concat.attrInt("axis") !== (rank ?? 0) - 1)) return undefined;
  const rotated = rotaryAt(concat.inputs[0]!, []);
  if (!rotated || !("op" in rotated)) return undefined;
  const [head, tail] = [rotated.source.producer, concat.inputs[1]!.producer];
  if (head?.op !== "Slice" || tail?.op !== "Slice" || head.inputs[0] !== tail.inputs[0]) return undefined;
  const x = head.inputs[0]!;
  const lastAxis = (n: Node) => {
    const axes = constantInts(n.inputs[3]);
    const steps = n.inputs[4] ? constantInts(n.inputs[4]) : [1];
    return axes?.length === 1 && (axes[0] === -1 || axes[0] === (rank ?? 0) - 1) && steps?.[0] === 1;
  };
  const width = shapeOf(x)?.at(-1);
  const tailEnd = constantInts(tail.inputs[2])?.[0];
  if (!lastAxis(head) || !lastAxis(tail) || constantInts(head.inputs[1])?.[0] !== 0) return undefined;
  // The two slices cover all of x's lanes only if the tail runs to the end and the widths add up.
  if (tailEnd === undefined || !(typeof width === "number" ? tailEnd >= width : tailEnd >= 2 ** 31 - 1)) return undefined;
  const [outShape, xShape] = [shapeOf(v), shapeOf(x)];
  const sameLanes = typeof outShape?.at(-1) === "number" && outShape.length === xShape?.length && outShape.every((d, i) => d === xShape[i]);
  return sameLanes || sameComputation(head.inputs[2], tail.inputs[1]) ? x : undefined;
}

/** Whether a and b are the same value, equal constants, or the same ops applied to such (a few levels deep). */
function sameComputation(a: Value | undefined, b: Value | undefined, depth = 4): boolean {
  if (a === b) return a !== undefined;
  if (!a || !b || depth === 0) return false;
  const [ca, cb] = [constantInts(a), constantInts(b)];
  if (ca || cb) return !!ca && !!cb && ca.join() === cb.join();
  const [pa, pb] = [a.producer, b.producer];
  if (!pa || !pb || pa.qualifiedOp !== pb.qualifiedOp || pa.inputs.length !== pb.inputs.length || pa.outputs.indexOf(a) !== pb.outputs.indexOf(b)) return false;
  if (JSON.stringify([...pa.attributes.values()]) !== JSON.stringify([...pb.attributes.values()])) return false;
  return pa.inputs.every((x, i) => sameComputation(x, pb.inputs[i], depth - 1));
}

const PROJECTIONS = new Set(["MatMul", "Gemm", "MatMulInteger", "MatMulNBits", "QLinearMatMul", "FusedMatMul", "DynamicQuantizeMatMul"]);
const POSITIONAL_OPS = new Set(["Sin", "Cos", "RotaryEmbedding"]);
/** Inputs that carry shapes, axes or indices of a layout op, not data. */
const PARAMETERS: Record<string, number> = { Reshape: 1, Expand: 1, Slice: 1, Unsqueeze: 1, Squeeze: 1, Tile: 1 };

/**
 * Whether something positional reaches `value` after its projection (walking back, not past a
 * MatMul/Gemm or a Shape): a Sin, Cos or RotaryEmbedding, or a graph input such as position_ids
 * or attention_mask. Returns what was found, for the reason.
 */
function positionalInput(value: Value): string | undefined {
  const seen = new Set<Value>();
  const stack = [value];
  while (stack.length > 0 && seen.size < 512) {
    const t = stack.pop()!;
    if (seen.has(t)) continue;
    seen.add(t);
    if (t.isGraphInput && !t.isInitializer) return `graph input ${t.name}`;
    const p = t.producer;
    if (!p || PROJECTIONS.has(p.op) || p.op === "Shape" || p.op === "Size") continue;
    if (POSITIONAL_OPS.has(p.op)) return p.describe();
    const until = PARAMETERS[p.op];
    p.inputs.forEach((i, index) => {
      if (i && (until === undefined || index < until)) stack.push(i);
    });
  }
  return undefined;
}
