import type { Node } from "../../graph/ir/node.ts";
import type { Value } from "../../graph/ir/value.ts";
import { constantTensor } from "../../graph/rewrite/index.ts";
import { shapeOf } from "./ops.ts";

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

/**
 * x when `v` is a rotary of x spelled in standard ops (the "decomposed" form of
 * rotary-embedding.ts), else undefined: a sum of products each of which multiplies lanes of x by
 * a factor that does not depend on x.
 */
export function decomposedSource(v: Value): Value | undefined {
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
  // x is the nearest value every product reads lanes of through exactly one operand, and every
  // pass-through term takes lanes of (a partial rotary may rotate a Slice of x and pass the rest).
  const [first, ...rest] = products;
  const shared = (c: Value) => rest.every((m) => m.inputs.filter((o) => o && chainOf(o).has(c)).length === 1) && passThrough.every((t) => chainOf(t).has(c));
  const candidates = first!.inputs.flatMap((operand) => (operand ? [...chainOf(operand)].filter(shared).slice(0, 1) : []));
  if (candidates.length !== 1) return undefined;
  const x = candidates[0]!;
  if (constantTensor(x) || x.isGraphInput) return undefined;
  if (!first!.inputs.some((o) => o && chainOf(o).has(x) && !first!.inputs.some((f) => f !== o && f && chainOf(f).has(x)))) return undefined;
  for (const m of products) {
    const factor = m.inputs.find((o) => o && !chainOf(o).has(x));
    if (!factor || dependsOn(factor, x)) return undefined;
  }
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
