import type { Graph } from "../../graph/ir/graph.ts";
import type { Value } from "../../graph/ir/value.ts";
import { ATTENTION_MASK, POSITION_IDS } from "../../runtime/contract-names.ts";

/**
 * Graph inputs that carry positions (directly or as lengths they are derived from); every other
 * graph input (ids, embeddings, the KV cache) carries hidden state.
 */
const POSITION_INPUTS = new Set([POSITION_IDS, ATTENTION_MASK, "seqlens_k", "total_sequence_length", "cache_position"]);

/**
 * What "positional" means for every pass that asks (rotary recognition, rotary-embedding.ts;
 * StreamingLLM's re-rotation): a value is positional when a graph input that carries positions
 * reaches it other than through Shape or Size (sizes are not positions: Shape(x) depends on how
 * many rows x has, not on where they sit).
 */
export function isPositionInput(v: Value): boolean {
  return v.isGraphInput && POSITION_INPUTS.has(v.name);
}

/** Ops whose output is a size, never the data or positions of their input. */
export function isSizeOp(op: string): boolean {
  return op === "Shape" || op === "Size";
}

/**
 * Which values of a graph depend on hidden state and which on positions (see `isPositionInput`),
 * so the nodes of a rotary embedding can be told apart from its operand and its angles: the Mul
 * nodes of a hidden operand by a position-only one are the rotation's multiplications by cos
 * and sin.
 */
export class PositionFlow {
  private readonly hiddenMemo = new Map<Value, boolean>();
  private readonly positionalMemo = new Map<Value, boolean>();

  constructor(readonly graph: Graph) {
    // Filled in graph order, so asking about a value deep in a large model recurses only as far as new nodes go.
    for (const node of graph.nodeArray()) for (const v of node.outputs) if (v) (this.hidden(v), this.positional(v));
  }

  hidden(v: Value): boolean {
    return memo(this.hiddenMemo, v, () => {
      if (v.isGraphInput) return !isPositionInput(v);
      const p = v.producer;
      // A shape is not hidden state: rows derived from Shape(x) are the same for any x of that shape.
      if (!p || isSizeOp(p.op)) return false;
      return p.inputs.some((i) => i !== undefined && this.hidden(i));
    });
  }

  positional(v: Value): boolean {
    return memo(this.positionalMemo, v, () => {
      if (v.isGraphInput) return isPositionInput(v);
      const p = v.producer;
      if (!p || isSizeOp(p.op)) return false;
      return p.inputs.some((i) => i !== undefined && this.positional(i));
    });
  }

  /** Position-only: angles, tables gathered at positions; not hidden state. */
  angles(v: Value): boolean {
    return this.positional(v) && !this.hidden(v);
  }
}

export function memo<K, V>(map: Map<K, V>, key: K, compute: () => V): V {
  const known = map.get(key);
  if (known !== undefined) return known;
  const value = compute();
  map.set(key, value);
  return value;
}
