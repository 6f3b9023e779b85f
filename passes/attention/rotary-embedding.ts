import type { Builder } from "../../graph/ir/builder.ts";
import type { Node } from "../../graph/ir/node.ts";
import type { Value } from "../../graph/ir/value.ts";
import { constantInts } from "../../graph/rewrite/index.ts";
import { shapeOf } from "./ops.ts";
import { scalarConstant } from "./peel.ts";
import { isPositionInput, isSizeOp, memo, type PositionFlow } from "./positions.ts";
import { decomposedSource } from "./rotary-decomposed.ts";

/**
 * Recognises the rotary position embedding behind a rotated Q or K (a canonical node's input, or
 * a new-rows value), for passes that compare queries or keys across positions (TokenSelect's
 * selection-cache fingerprint, QUERY_ROTATE in its released code) or re-rotate keys at new positions
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
 * This is the one rotary recogniser: `spelledRotary` names the nodes of a decomposed rotary for
 * a pass that copies them, rotary-fusable.ts which decomposed ones a fused op computes, and what
 * counts as positional is positions.ts's rule everywhere.
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
/** Inputs that carry shapes, axes or indices of a layout op, not data. */
const PARAMETERS: Record<string, number> = { Reshape: 1, Expand: 1, Slice: 1, Unsqueeze: 1, Squeeze: 1, Tile: 1 };

/**
 * Whether something positional (positions.ts) reaches `value` after its projection (walking
 * back, not past a MatMul/Gemm: a learned position embedding added before the projection is
 * not a rotary's business). Returns the position input found, for the reason.
 */
function positionalInput(value: Value): string | undefined {
  const seen = new Set<Value>();
  const stack = [value];
  while (stack.length > 0 && seen.size < 512) {
    const t = stack.pop()!;
    if (seen.has(t)) continue;
    seen.add(t);
    if (isPositionInput(t)) return `graph input ${t.name}`;
    const p = t.producer;
    if (!p || PROJECTIONS.has(p.op) || isSizeOp(p.op)) continue;
    const until = PARAMETERS[p.op];
    p.inputs.forEach((i, index) => {
      if (i && (until === undefined || index < until)) stack.push(i);
    });
  }
  return undefined;
}

/** Ops a rotary embedding applies to its operand with (rotate-half by Slice/Neg/Concat, or pairwise lanes): the walk back from a rotated value stops at anything else (a projection). */
const ROTARY_OPS = new Set(["Mul", "Add", "Sub", "Neg", "Slice", "Split", "Concat", "Unsqueeze", "Squeeze", "Reshape", "Transpose", "Identity", "Cast", "Gather"]);

/** How far back from the rotated value a rotary embedding's nodes may sit. */
const MAX_ROTARY_DEPTH = 12;

/**
 * The nodes of a rotary spelled in standard ops behind `rotated` (`trace` = traceRotary's
 * answer for it), from its operand `unrotated` to `rotated`, for a pass that copies them to
 * rotate other rows; `flow` tells the operand (hidden state) from the angles (positional).
 * Undefined when nothing multiplies hidden state by angles (a plain projection); `reason` when
 * positions reach `rotated` in a way no copy of those nodes can reproduce.
 */
export function spelledRotary(rotated: Value, trace: RotaryTrace, flow: PositionFlow): { unrotated: Value; nodes: Set<Node> } | { reason: string } | undefined {
  // Walk back through the ops a rotation uses, noting whether any multiplies by angles.
  const depth = new Map<Value, number>([[rotated, 0]]);
  const walked = new Set<Node>();
  let mixes = false;
  const queue = [rotated];
  while (queue.length) {
    const v = queue.shift()!;
    const p = v.producer;
    if (!p || walked.has(p) || !ROTARY_OPS.has(p.op) || p.domain !== "" || depth.get(v)! >= MAX_ROTARY_DEPTH || !flow.hidden(v)) continue;
    walked.add(p);
    mixes ||= p.op === "Mul" && p.inputs.some((i) => i && flow.hidden(i)) && p.inputs.some((i) => i && flow.angles(i));
    for (const i of p.inputs) {
      if (!i || !flow.hidden(i) || depth.has(i)) continue;
      depth.set(i, depth.get(v)! + 1);
      queue.push(i);
    }
  }
  if (!mixes) {
    // Nothing multiplies by angles: a plain projection, unless positions reach it some other way.
    const positional = [...walked].find((n) => n.inputs.some((i) => i && flow.angles(i)));
    return positional && { reason: `${positional.describe()} reads positions but no rotary embedding was recognised; cannot re-position it` };
  }
  // The operand: the one value the rotary's products read lanes of, within the walk.
  const unrotated = "rotary" in trace && trace.rotary === "decomposed" && depth.has(trace.source) ? trace.source : undefined;
  if (!unrotated) return { reason: "its rotary embedding mixes several operands; cannot re-rotate it at in-cache positions" };
  const nodes = between(unrotated, rotated, walked);
  for (const n of nodes) {
    if (n.subgraphs().length) return { reason: `its rotary embedding holds a subgraph (${n.describe()})` };
    for (const i of n.inputs) {
      if (i && flow.hidden(i) && i !== unrotated && !nodes.has(i.producer!)) return { reason: `${n.describe()} in its rotary embedding reads hidden state other than the rotated rows` };
    }
  }
  return { unrotated, nodes };
}

/** The walked nodes on a path from `from` to `to`. */
function between(from: Value, to: Value, walked: ReadonlySet<Node>): Set<Node> {
  const reaches = new Map<Node, boolean>();
  const fromFrom = (n: Node): boolean => memo(reaches, n, () => walked.has(n) && n.inputs.some((i) => i === from || (i?.producer !== undefined && fromFrom(i.producer))));
  const region = new Set<Node>();
  const stack = [to.producer!];
  while (stack.length) {
    const n = stack.pop()!;
    if (region.has(n) || !fromFrom(n)) continue;
    region.add(n);
    for (const i of n.inputs) if (i?.producer) stack.push(i.producer);
  }
  return region;
}
