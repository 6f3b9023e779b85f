import type { Builder } from "../../../graph/ir/builder.ts";
import { DataType } from "../../../graph/ir/dtype.ts";
import { PipecError } from "../../../graph/errors.ts";
import type { Graph } from "../../../graph/ir/graph.ts";
import type { Node } from "../../../graph/ir/node.ts";
import type { Value } from "../../../graph/ir/value.ts";
import { dtypeOf } from "../../attention/ops.ts";
import { PositionFlow } from "../../attention/positions.ts";
import { replayLayout, spelledRotary, traceRotary, type FusedRotaryTrace, type RotaryTrace } from "../../attention/rotary-embedding.ts";
import { fusedRotaryOf } from "../../attention/rotary-fusable.ts";
import { fusedRotaryAt } from "./fused-rotary.ts";
import { POSITION_IDS } from "../../../runtime/contract-names.ts";

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
 * Re-rotates the keys and queries of a graph at other positions: finds each one's rotary
 * embedding (traceRotary and spelledRotary, passes/attention/rotary-embedding.ts) and rebuilds
 * its angles at the new positions. One per graph: layers sharing a rotary table and positions
 * share the rebuilt angles.
 */
export class Rerotation {
  readonly flow: PositionFlow;
  /** Angle values already computed at a positions value: layers sharing one rotary table (and positions) share the gathered rows. */
  private readonly anglesMemo = new Map<Value, Map<Value, Value>>();
  /** A fused rotary's tables cut from angle values (fused-rotary.ts), shared the same way. */
  private readonly fusedTables = new Map<Value, Value>();

  constructor(graph: Graph) {
    this.flow = new PositionFlow(graph);
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
      if (!positions || !this.flow.positional(positions)) throw new PipecError("streaming-positions", `${what}: ${rotary.describe()} does not read position_ids; cannot re-rotate it at in-cache positions`);
      return {
        unrotated,
        at: (b, rows, positions_1R) => {
          const cache = (x: Value) => (this.flow.positional(x) ? this.anglesAt(b, x, positions_1R, what) : x);
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
   * form is one it computes (fused-rotary.ts): one pass over the kept keys where a copied
   * Slice/Neg/Concat/Mul/Add chain makes one per op (bench/README.md); any other form is copied as written.
   */
  private spelledRotationOf(rotated: Value, trace: RotaryTrace, what: string): Rotation | undefined {
    const spelled = spelledRotary(rotated, trace, this.flow);
    if (!spelled) return undefined;
    if ("reason" in spelled) throw new PipecError("streaming-positions", `${what}: ${spelled.reason}`);
    const { unrotated, nodes: region } = spelled;
    const fused = fusedRotaryOf(rotated, unrotated, (v) => this.flow.angles(v));
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
          return this.flow.angles(v) ? this.anglesAt(b, v, positions_1R, what) : v;
        };
        return copy(rotated);
      },
    };
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
    } else if (p!.op === "Gather" && p!.domain === "" && (p!.attrInt("axis", 0) ?? 0) === 0 && this.flow.positional(p!.inputs[1]!)) {
      // A table's rows at the positions (the table itself may be cut to the context length: the new positions are within it).
      out = b.op.Gather(p!.inputs[0]!, asIndexType(b, positions_1R, p!.inputs[1]!), { axis: 0 });
    } else {
      if (p!.subgraphs().length) throw new PipecError("streaming-positions", `${what}: its rotary angles are computed in a subgraph (${p!.describe()})`);
      const outs = cloneNode(b, p!, p!.inputs.map((i) => i && (this.flow.positional(i) ? this.anglesAt(b, i, positions_1R, what) : i)));
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
