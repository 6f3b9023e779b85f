import type { AttrInput, Graph, NodeOptions } from "./graph.ts";
import { DataType } from "./dtype.ts";
import { PROVENANCE_KEY, type Node } from "./node.ts";
import { Tensor, type TypedArray } from "./tensor.ts";
import { tensorType, type Dim } from "./types.ts";
import { Value } from "./value.ts";

export type Attrs = Record<string, AttrInput | undefined>;
type OpArg = Value | undefined | Attrs;

/** `b.op.MatMul(x, w)`, `b.op.Softmax(s, { axis: -1 })`: any operator, returning its first output. */
export type OpCalls = Record<string, (...args: OpArg[]) => Value>;

export interface BuilderOptions {
  /** Insert new nodes before this node instead of at the end of the graph. */
  before?: Node;
  /** Stamp created nodes with this rule or pass name (in metadata_props, key `pipec.rule`). */
  provenance?: string;
  /** Prefix for the names of created values. */
  prefix?: string;
}

/**
 * Builds graph fragments in code that reads like the graph:
 *
 *   const b = new Builder(graph);
 *   const scores = b.op.MatMul(q, b.op.Transpose(k, { perm: [0, 1, 3, 2] }));
 *   const probs = b.op.Softmax(b.op.Add(scores, mask), { axis: -1 });
 *
 * Every node it creates is recorded in `created`, in order.
 */
export class Builder {
  readonly created: Node[] = [];
  readonly op: OpCalls;

  constructor(
    readonly graph: Graph,
    private readonly opts: BuilderOptions = {},
  ) {
    this.op = this.domain("");
  }

  /** Operators of another domain: `b.domain("com.microsoft").GroupQueryAttention(...)`. */
  domain(domain: string): OpCalls {
    return new Proxy({} as OpCalls, {
      get: (_, op: string) =>
        (...args: OpArg[]) => {
          const last = args[args.length - 1];
          const attrs = last !== undefined && !(last instanceof Value) ? (args.pop() as Attrs) : undefined;
          return this.node(op, args as (Value | undefined)[], { domain, attributes: attrs }).output(0);
        },
    });
  }

  /** A node with any number of outputs: `const [values, indices] = b.node("TopK", [x, k], { outputs: 2 }).outputs`. */
  node(op: string, inputs: readonly (Value | undefined)[], opts: NodeOptions = {}): Node {
    const outputs = opts.outputs ?? 1;
    const hints = typeof outputs === "number" ? Array.from({ length: outputs }, (_, i) => `${this.opts.prefix ?? ""}${op}${outputs > 1 ? `_${i}` : ""}`) : outputs;
    const node = this.graph.addNode(op, inputs, { ...opts, outputs: hints }, this.opts.before);
    if (this.opts.provenance) node.metadata.set(PROVENANCE_KEY, this.opts.provenance);
    this.created.push(node);
    return node;
  }

  /** An initializer holding `values` with shape `dims`. */
  constant(dtype: number, dims: readonly number[], values: TypedArray, hint = "const"): Value {
    return this.graph.addInitializer(Tensor.fromArray(hint, dtype, dims, values), `${this.opts.prefix ?? ""}${hint}`);
  }

  /** An int64 constant: a scalar for a number, a 1-D tensor for an array (unless `dims` says otherwise). */
  int64(values: number | readonly number[], dims?: readonly number[]): Value {
    const list = typeof values === "number" ? [values] : values;
    return this.constant(DataType.INT64, dims ?? (typeof values === "number" ? [] : [list.length]), BigInt64Array.from(list, BigInt), "i64");
  }

  float32(values: number | readonly number[], dims?: readonly number[]): Value {
    const list = typeof values === "number" ? [values] : values;
    return this.constant(DataType.FLOAT, dims ?? (typeof values === "number" ? [] : [list.length]), Float32Array.from(list), "f32");
  }

  /** A graph input. */
  input(name: string, dtype: number, shape?: Dim[]): Value {
    return this.graph.addInput(name, dtype, shape);
  }

  /** Marks `value` as a graph output, renaming it to `name` when given. */
  output(value: Value, name?: string, type = value.type): Value {
    if (name && value.name !== name) this.graph.renameValue(value, name);
    value.type = type;
    this.graph.addOutput(value);
    return value;
  }

  /** Declares the type of a value the builder made (for models whose outputs need shapes). */
  typed(value: Value, dtype: number, shape?: Dim[]): Value {
    value.type = tensorType(dtype, shape);
    return value;
  }
}
