import type { Builder } from "../../compiler/ir/builder.ts";
import type { Node } from "../../compiler/ir/node.ts";
import type { Value } from "../../compiler/ir/value.ts";
import { constantTensor } from "../../compiler/rewrite/index.ts";
import { scalarConstant } from "./peel.ts";
import { shapeOf } from "./ops.ts";

/**
 * The value a rotary embedding was applied to, for a rotated Q or K (a canonical node's input,
 * or a new-rows value): what a pass needs when it compares queries or keys across positions
 * (TokenSelect's selection-cache fingerprint, the reference's QUERY_ROTATE) or re-rotates keys
 * at new positions (StreamingLLM). Recognised by what the graph computes, not by exporter:
 *   - `RotaryEmbedding` (ONNX 23) and `com.microsoft.RotaryEmbedding`: their input 0;
 *   - "decomposed": a sum (Add/Sub, Concat, Reshape, Unsqueeze, Neg) of products each of which
 *     multiplies lanes of one x (x itself, Slice/Neg/Concat/Reshape of x) by a factor that does
 *     not depend on x. That covers HF's `x*cos + rotate_half(x)*sin` and GPT-J's every-two
 *     pairing as torch.onnx / dynamo / the zoo export them, and the standard-op rotary the
 *     lifter writes out for GroupQueryAttention's do_rotary (passes/attention/rotary.ts);
 *     a partial rotary's pass-through lanes (a Slice of x concatenated unrotated) are allowed.
 * Between the rotary and `value` only layout steps may sit (Transpose, Reshape, Squeeze,
 * Unsqueeze, Identity, Cast, Mul/Div by a scalar constant); they are replayed on the source, so
 * the result has `value`'s shape and layout.
 */
export type RotaryForm = "RotaryEmbedding" | "com.microsoft.RotaryEmbedding" | "decomposed";

/**
 * `rotary` set: `value` before that rotary, laid out as `value`. `rotary` absent: nothing
 * positional lies between the projection and `value` (GPT-2), so `value` is its own source.
 * `reason`: something depends on positions there but no rotary form was recognised.
 */
export type Unrotated = { value: Value; rotary?: RotaryForm } | { reason: string };

/** What `unrotatedSource` found, without building anything. */
export type RotaryTrace = { source: Value; rotary: RotaryForm; layout: Node[] } | { source: Value; rotary?: undefined } | { reason: string };

/** Builds (before `b`'s insertion point) the un-rotated `value`; see `Unrotated`. */
export function unrotatedSource(b: Builder, value: Value): Unrotated {
  const trace = traceRotary(value);
  if ("reason" in trace) return trace;
  if (!trace.rotary) return { value };
  let x = trace.source;
  for (const step of trace.layout) {
    const inputs = step.inputs.map((v, i) => (i === dataInput(step) ? x : v));
    const copy = b.node(step.op, inputs, { domain: step.domain });
    for (const a of step.attributes.values()) copy.setAttribute(a);
    x = copy.output(0);
  }
  return { value: x, rotary: trace.rotary };
}

/** Finds the rotary behind `value` and the layout steps after it (source side first). */
export function traceRotary(value: Value): RotaryTrace {
  const layout: Node[] = [];
  let v = value;
  for (let depth = 0; depth < MAX_LAYOUT_STEPS; depth++) {
    const found = rotaryInput(v);
    if (found) return { source: found.source, rotary: found.form, layout: layout.reverse() };
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

const MAX_LAYOUT_STEPS = 16;

function isLayoutStep(n: Node): boolean {
  if (n.domain !== "" && n.domain !== "ai.onnx") return false;
  if (["Transpose", "Reshape", "Squeeze", "Unsqueeze", "Identity", "Cast"].includes(n.op)) return true;
  if (n.op !== "Mul" && n.op !== "Div") return false;
  return scalarConstant(n.inputs[1]) !== undefined || (n.op === "Mul" && scalarConstant(n.inputs[0]) !== undefined);
}

/** The input a layout step or lane op moves (the others are shapes, axes, starts, factors). */
function dataInput(n: Node): number {
  return n.op === "Mul" && scalarConstant(n.inputs[0]) !== undefined && scalarConstant(n.inputs[1]) === undefined ? 1 : 0;
}

function rotaryInput(v: Value): { source: Value; form: RotaryForm } | undefined {
  const p = v.producer;
  if (p?.op === "RotaryEmbedding" && (p.domain === "" || p.domain === "ai.onnx" || p.domain === "com.microsoft") && v === p.outputs[0]) {
    return { source: p.inputs[0]!, form: p.domain === "com.microsoft" ? "com.microsoft.RotaryEmbedding" : "RotaryEmbedding" };
  }
  const source = decomposedSource(v);
  return source && { source, form: "decomposed" };
}

/** Ops a rotary's sum is assembled with, and the inputs that carry its terms. */
const SUM_OPS: Record<string, (n: Node) => readonly (Value | undefined)[]> = {
  Add: (n) => n.inputs,
  Sub: (n) => n.inputs,
  Concat: (n) => n.inputs,
  Neg: (n) => [n.inputs[0]],
  Reshape: (n) => [n.inputs[0]],
  Unsqueeze: (n) => [n.inputs[0]],
  Squeeze: (n) => [n.inputs[0]],
};

/** Ops that only pick, negate or rearrange lanes of their data input(s). */
const LANE_OPS = new Set(["Slice", "Neg", "Unsqueeze", "Squeeze", "Reshape", "Identity", "Split", "Concat"]);
const MAX_TERMS = 64;

/** x when `v` is a decomposed rotary of x (see RotaryForm), else undefined. */
function decomposedSource(v: Value): Value | undefined {
  const products: Node[] = [];
  const passThrough: Value[] = [];
  const stack = [v];
  for (let seen = 0; stack.length > 0; seen++) {
    if (seen > MAX_TERMS) return undefined;
    const t = stack.pop()!;
    const p = t.producer;
    const standard = p && (p.domain === "" || p.domain === "ai.onnx");
    if (standard && p.op === "Mul") products.push(p);
    else if (standard && SUM_OPS[p.op]) stack.push(...(SUM_OPS[p.op]!(p).filter((x) => x !== undefined) as Value[]));
    else passThrough.push(t);
  }
  if (products.length < 2) return undefined;
  const chains = new Map<Value, Set<Value>>();
  const chainOf = (x: Value) => chains.get(x) ?? chains.set(x, new Set(laneChain(x))).get(x)!;
  // x is the nearest value every product reads lanes of through exactly one operand.
  const [first, ...rest] = products;
  const candidates = first!.inputs.flatMap((operand) => (operand ? [...chainOf(operand)].filter((c) => rest.every((m) => m.inputs.filter((o) => o && chainOf(o).has(c)).length === 1)).slice(0, 1) : []));
  if (candidates.length !== 1) return undefined;
  const x = candidates[0]!;
  if (constantTensor(x) || x.isGraphInput) return undefined;
  if (!first!.inputs.some((o) => o && chainOf(o).has(x) && !first!.inputs.some((f) => f !== o && f && chainOf(f).has(x)))) return undefined;
  for (const m of products) {
    const factor = m.inputs.find((o) => o && !chainOf(o).has(x));
    if (!factor || dependsOn(factor, x)) return undefined;
  }
  if (!passThrough.every((t) => chainOf(t).has(x))) return undefined;
  return sameShape(shapeOf(v), shapeOf(x)) ? x : undefined;
}

/** `v`, then the values it takes lanes from, nearest first (a Concat's inputs must meet). */
function laneChain(v: Value): Value[] {
  const chain = [v];
  const p = v.producer;
  if (!p || !(p.domain === "" || p.domain === "ai.onnx") || !LANE_OPS.has(p.op)) return chain;
  if (p.op !== "Concat") return [...chain, ...laneChain(p.inputs[0]!)];
  const parts = p.inputs.filter((x) => x !== undefined).map((x) => laneChain(x!));
  const meet = parts[0]?.find((c) => parts.every((q) => q.includes(c)));
  return meet ? [...chain, ...parts[0]!.slice(parts[0]!.indexOf(meet))] : chain;
}

/**
 * Whether `x`'s data reaches `v` (a bounded search, not through Shape or Size: positions may be
 * derived from x's length, as the lifted GroupQueryAttention does). Unsure counts as yes.
 */
function dependsOn(v: Value, x: Value): boolean {
  const seen = new Set<Value>();
  const stack = [v];
  while (stack.length > 0) {
    const t = stack.pop()!;
    if (t === x || seen.size >= MAX_FACTOR_VALUES) return true;
    if (seen.has(t)) continue;
    seen.add(t);
    const p = t.producer;
    if (p && p.op !== "Shape" && p.op !== "Size") for (const i of p.inputs) if (i) stack.push(i);
  }
  return false;
}

const MAX_FACTOR_VALUES = 1024;

function sameShape(a: readonly unknown[] | undefined, b: readonly unknown[] | undefined): boolean {
  if (!a || !b) return true;
  return a.length === b.length && a.every((d, i) => d === undefined || b[i] === undefined || d === b[i]);
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
