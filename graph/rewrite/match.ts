import type { Node } from "../ir/node.ts";
import type { Tensor } from "../ir/tensor.ts";
import type { Value } from "../ir/value.ts";

/** A place where a pattern matched: what `check` and `rewrite` receive and `findMatches` returns. */
export class Match {
  constructor(
    /** The node the pattern's root op matched; replacements go to its outputs. */
    readonly root: Node,
    /** Every node the pattern's ops matched, root first. */
    readonly nodes: readonly Node[],
    /** Values bound by `p.var`, `p.constant` and `.as(name)`. */
    readonly values: Readonly<Record<string, Value>>,
    /** For each `p.oneOf(tag, ...)` on the matched path: the label of the alternative that matched. */
    readonly tags: Readonly<Record<string, string>>,
  ) {}

  /** The tensor of a value bound by `p.constant(name)`. */
  tensor(name: string): Tensor {
    const v = this.values[name];
    const t = v && constantTensor(v);
    if (!t) throw new Error(`match has no constant bound as '${name}'`);
    return t;
  }
}

/** The tensor a value always holds: a non-overridable initializer or a Constant node's `value`. */
export function constantTensor(v: Value | undefined): Tensor | undefined {
  if (!v) return undefined;
  if (v.initializer) return v.isGraphInput ? undefined : v.initializer;
  const p = v.producer;
  if (p && p.op === "Constant" && (p.domain === "" || p.domain === "ai.onnx")) return p.attributes.get("value")?.tensor;
  return undefined;
}

/** A constant's elements as numbers (int64 included), e.g. a Slice's starts or a Reshape's target. */
export function constantInts(v: Value | undefined): number[] | undefined {
  const tensor = constantTensor(v);
  return tensor && Array.from(tensor.toArray() as ArrayLike<number | bigint>, Number);
}

/** `%x (output of MatMul 'mm')`, `graph input %x`, ...: how the tracer names a value it found. */
export function describeValue(v: Value | undefined): string {
  if (!v) return "an omitted input";
  if (v.initializer) return `initializer ${v}`;
  const p = v.producer;
  if (!p) return v.isGraphInput ? `graph input ${v}` : `${v} (from an enclosing graph)`;
  const which = p.outputs.length > 1 ? `output ${v.outputIndex} of ` : "output of ";
  return `${v} (${which}${p.describe()})`;
}
