import type { Builder } from "../../../graph/ir/builder.ts";
import { DataType } from "../../../graph/ir/dtype.ts";
import { PipecError } from "../../../graph/errors.ts";
import type { Graph } from "../../../graph/ir/graph.ts";
import type { Node } from "../../../graph/ir/node.ts";
import type { Value } from "../../../graph/ir/value.ts";
import { dtypeOf } from "../../attention/ops.ts";
import { replayLayout, traceRotary, type FusedRotaryTrace, type RotaryTrace } from "../../attention/rotary-embedding.ts";
import { fusedRotaryAt, fusedRotaryOf } from "./fused-rotary.ts";
import { ATTENTION_MASK, POSITION_IDS } from "../../../runtime/contract-names.ts";

/**
 * Graph inputs that carry positions (directly or as lengths they are derived from); every other
 * graph input (ids, embeddings, the KV cache) carries hidden state.
 */
const POSITION_INPUTS = new Set([POSITION_IDS, ATTENTION_MASK, "seqlens_k", "total_sequence_length", "cache_position"]);

/** Ops a rotary embedding applies to its operand with (rotate-half by Slice/Neg/Concat, or pairwise lanes): the walk back from a rotated value stops at anything else (a projection). */
const ROTARY_OPS = new Set(["Mul", "Add", "Sub", "Neg", "Slice", "Split", "Concat", "Unsqueeze", "Squeeze", "Reshape", "Transpose", "Identity", "Cast", "Gather"]);

/** How far back from the rotated value a rotary embedding's nodes may sit. */
const MAX_DEPTH = 12;

/**
 * A rotary embedding found in the graph: `rotated` = rotary(`unrotated`, angles of the fed
 * positions). `at` rebuilds the same rotation (a copy of its nodes) for other rows and positions.
 */
export interface Rotation {
  unrotated: Value;
  /** Applies the rotation to `rows` (laid out as `unrotated`) at `positions_1R` (int64 [1, R]). */
  at(b: Builder, rows: Value, positions_1R: Value): Value;
}

/**
 * Which values depend on hidden state and which on positions, so the nodes of a rotary embedding
 * (recognised by traceRotary, passes/attention/rotary-embedding.ts) can be told apart from its
 * operand and its angles, and the angles rebuilt at other positions: the Mul nodes of a hidden
 * operand by a position-only one are the rotation's multiplications by cos and sin.
 */
export class PositionFlow {
  private readonly hiddenMemo = new Map<Value, boolean>();
  private readonly positionalMemo = new Map<Value, boolean>();
  /** Angle values already computed at a positions value: layers sharing one rotary table (and positions) share the gathered rows. */
  private readonly anglesMemo = new Map<Value, Map<Value, Value>>();
  /** A fused rotary's tables cut from angle values (fused-rotary.ts), shared the same way. */
  private readonly fusedTables = new Map<Value, Value>();

  constructor(readonly graph: Graph) {
    // Filled in graph order, so asking about a value deep in a large model recurses only as far as new nodes go.
    for (const node of graph.nodeArray()) for (const v of node.outputs) if (v) (this.hidden(v), this.positional(v));
  }

  hidden(v: Value): boolean {
    return memo(this.hiddenMemo, v, () => {
      if (v.isGraphInput) return !POSITION_INPUTS.has(v.name);
      const p = v.producer;
      // A shape is not hidden state: rows derived from Shape(x) are the same for any x of that shape.
      if (!p || p.op === "Shape" || p.op === "Size") return false;
      return p.inputs.some((i) => i !== undefined && this.hidden(i));
    });
  }

  positional(v: Value): boolean {
    return memo(this.positionalMemo, v, () => {
      if (v.isGraphInput) return POSITION_INPUTS.has(v.name);
      const p = v.producer;
      // Sizes are not positions: Shape(x) depends on how many rows x has, not on where they sit.
      if (!p || p.op === "Shape" || p.op === "Size") return false;
      return p.inputs.some((i) => i !== undefined && this.positional(i));
    });
  }

  /** Position-only: angles, tables gathered at positions; not hidden state. */
  angles(v: Value): boolean {
    return this.positional(v) && !this.hidden(v);
  }

  /**
   * The rotary embedding that produced `rotated`, undefined when none did (learned absolute
   * positions: the value is a plain projection). A rotation that cannot be rebuilt at other
   * positions throws, naming `what` and why.
   */
  rotationOf(b: Builder, rotated: Value, what: string): Rotation | undefined {
    const trace = traceRotary(rotated);
    return "op" in trace ? this.fusedRotation(b, trace, what) : this.spelledRotationOf(rotated, trace, what);
  }

  /**
   * A fused RotaryEmbedding op (traceRotary), possibly followed by the head reshape and
   * transpose: the operand is that layout applied to its input (built with `b`), and the rotation
   * is a new ONNX RotaryEmbedding of [B, H, R, D] rows at the new positions.
   */
  private fusedRotation(b: Builder, trace: FusedRotaryTrace, what: string): Rotation {
    const rotary = trace.op;
    const unrotated = replayLayout(b, trace.source, trace.layout);
    if (trace.rotary === "com.microsoft.RotaryEmbedding") {
      // (input, position_ids, cos_cache, sin_cache): caches computed from the positions (optimize_for_ort
      // computes them for 0..max(position_ids)) are computed at the new ones; num_heads stays, which a
      // partial rotary_embedding_dim needs.
      const [, positions, cos, sin] = rotary.inputs;
      if (!positions || !this.positional(positions)) throw new PipecError("streaming-positions", `${what}: ${rotary.describe()} does not read position_ids; cannot re-rotate it at in-cache positions`);
      return {
        unrotated,
        at: (b, rows, positions_1R) => {
          const cache = (x: Value) => (this.positional(x) ? this.anglesAt(b, x, positions_1R, what) : x);
          return cloneNode(b, rotary, [rows, asIndexType(b, positions_1R, positions), cache(cos!), cache(sin!)])[0]!;
        },
      };
    }
    const [, cos, sin, positions] = rotary.inputs;
    return {
      unrotated,
      at: (b, rows, positions_1R) => {
        const angles = (x: Value) => this.anglesAt(b, x, positions_1R, "RotaryEmbedding");
        const inputs = positions ? [rows, cos, sin, asIndexType(b, positions_1R, positions)] : [rows, angles(cos!), angles(sin!)];
        // [B, H, R, D] rows: num_heads is for 3-D input only.
        return cloneNode(b, rotary, inputs, (name) => name !== "num_heads")[0]!;
      },
    };
  }

  /**
   * A rotary embedding spelled in elementwise ops (x * cos + rotate(x) * sin, in any of its forms).
   * Re-rotating the whole cache each step is one fused com.microsoft.RotaryEmbedding where the
   * form is one it computes (fused-rotary.ts; measured per layer at [1, 4, 1025, 64]: 97 us
   * against 595 us for a copied Slice/Neg/Concat/Mul/Add chain); any other form is copied as written.
   */
  private spelledRotationOf(rotated: Value, trace: RotaryTrace, what: string): Rotation | undefined {
    // Walk back through the ops a rotation uses, noting whether any multiplies by angles.
    const depth = new Map<Value, number>([[rotated, 0]]);
    const walked = new Set<Node>();
    let mixes = false;
    const queue = [rotated];
    while (queue.length) {
      const v = queue.shift()!;
      const p = v.producer;
      if (!p || walked.has(p) || !ROTARY_OPS.has(p.op) || p.domain !== "" || depth.get(v)! >= MAX_DEPTH || !this.hidden(v)) continue;
      walked.add(p);
      mixes ||= p.op === "Mul" && p.inputs.some((i) => i && this.hidden(i)) && p.inputs.some((i) => i && this.angles(i));
      for (const i of p.inputs) {
        if (!i || !this.hidden(i) || depth.has(i)) continue;
        depth.set(i, depth.get(v)! + 1);
        queue.push(i);
      }
    }
    if (!mixes) {
      // Nothing multiplies by angles: a plain projection, unless positions reach it some other way.
      const positional = [...walked].find((n) => n.inputs.some((i) => i && this.angles(i)));
      if (positional) throw new PipecError("streaming-positions", `${what}: ${positional.describe()} reads positions but no rotary embedding was recognised; cannot re-position it`);
      return undefined;
    }
    // The operand: the one value the rotary's products read lanes of, within the walk.
    const unrotated = "rotary" in trace && trace.rotary === "decomposed" && depth.has(trace.source) ? trace.source : undefined;
    if (!unrotated) throw new PipecError("streaming-positions", `${what}: its rotary embedding mixes several operands; cannot re-rotate it at in-cache positions`);
    const region = this.between(unrotated, rotated, walked);
    for (const n of region) {
      if (n.subgraphs().length) throw new PipecError("streaming-positions", `${what}: its rotary embedding holds a subgraph (${n.describe()})`);
      for (const i of n.inputs) {
        if (i && this.hidden(i) && i !== unrotated && !region.has(i.producer!)) throw new PipecError("streaming-positions", `${what}: ${n.describe()} in its rotary embedding reads hidden state other than the rotated rows`);
      }
    }
    const fused = fusedRotaryOf(rotated, unrotated, (v) => this.angles(v));
    if (fused) return { unrotated, at: (b, rows, positions_1R) => fusedRotaryAt(b, fused, rows, (angle) => this.anglesAt(b, angle, positions_1R, what), this.fusedTables) };
    return {
      unrotated,
      at: (b, rows, positions_1R) => {
        const copies = new Map<Value, Value>([[unrotated, rows]]);
        const copy = (v: Value): Value => {
          const known = copies.get(v);
          if (known) return known;
          if (v.producer && region.has(v.producer)) {
            const outs = cloneNode(b, v.producer, v.producer.inputs.map((i) => i && copy(i)));
            v.producer.outputs.forEach((o, k) => o && copies.set(o, outs[k]!));
            return copies.get(v)!;
          }
          return this.angles(v) ? this.anglesAt(b, v, positions_1R, what) : v;
        };
        return copy(rotated);
      },
    };
  }

  /** The walked nodes on a path from `from` to `to`. */
  private between(from: Value, to: Value, walked: ReadonlySet<Node>): Set<Node> {
    const reaches = new Map<Node, boolean>();
    const fromFrom = (n: Node): boolean =>
      memo(reaches, n, () => walked.has(n) && n.inputs.some((i) => i === from || (i?.producer !== undefined && fromFrom(i.producer))));
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

  /**
   * A copy of the angle value `v` computed at `positions_1R` instead of the fed positions: a
   * table gathered at positions is gathered at the new ones, the position_ids input is replaced,
   * and everything between is copied.
   */
  private anglesAt(b: Builder, v: Value, positions_1R: Value, what: string): Value {
    const done = this.anglesMemo.get(positions_1R) ?? new Map<Value, Value>();
    this.anglesMemo.set(positions_1R, done);
    const known = done.get(v);
    if (known) return known;
    let out: Value;
    const p = v.producer;
    if (v.isGraphInput) {
      if (v.name !== POSITION_IDS) throw new PipecError("streaming-positions", `${what}: its rotary angles come from ${v.name}, not from a position table or position_ids; cannot re-rotate it at in-cache positions`);
      out = asIndexType(b, positions_1R, v);
    } else if (p!.op === "Gather" && p!.domain === "" && (p!.attrInt("axis", 0) ?? 0) === 0 && this.positional(p!.inputs[1]!)) {
      // A table's rows at the positions (the table itself may be cut to the context length: the new positions are within it).
      out = b.op.Gather(p!.inputs[0]!, asIndexType(b, positions_1R, p!.inputs[1]!), { axis: 0 });
    } else {
      if (p!.subgraphs().length) throw new PipecError("streaming-positions", `${what}: its rotary angles are computed in a subgraph (${p!.describe()})`);
      const outs = cloneNode(b, p!, p!.inputs.map((i) => i && (this.positional(i) ? this.anglesAt(b, i, positions_1R, what) : i)));
      out = outs[v.outputIndex]!;
    }
    done.set(v, out);
    return out;
  }
}

/** int64 positions as `like`'s index type (int32 or int64). */
function asIndexType(b: Builder, positions: Value, like: Value): Value {
  return dtypeOf(like) === DataType.INT32 ? b.op.Cast(positions, { to: DataType.INT32 }) : positions;
}

/** A copy of `node` reading `inputs`; returns its outputs. */
function cloneNode(b: Builder, node: Node, inputs: (Value | undefined)[], keep: (attribute: string) => boolean = () => true): (Value | undefined)[] {
  const copy = b.node(node.op, inputs, { domain: node.domain, outputs: node.outputs.length });
  for (const attr of node.attributes.values()) if (keep(attr.name)) copy.setAttribute(attr);
  return copy.outputs;
}

function memo<K, V>(map: Map<K, V>, key: K, compute: () => V): V {
  const known = map.get(key);
  if (known !== undefined) return known;
  const value = compute();
  map.set(key, value);
  return value;
}
