import { create } from "@bufbuild/protobuf";
import { GraphProtoSchema, type GraphProto } from "../onnx/generated/onnx_pb.ts";
import { makeAttribute, type FloatAttr } from "./attribute.ts";
import { NameTable } from "./names.ts";
import { Node } from "./node.ts";
import type { Tensor } from "./tensor.ts";
import { tensorType, type ValueType } from "./types.ts";
import { Value } from "./value.ts";

export type AttrInput = number | string | FloatAttr | number[] | string[] | FloatAttr[] | Tensor | Graph;

export interface NodeOptions {
  domain?: string;
  /** Number of outputs, or their name hints. Default 1. */
  outputs?: number | string[];
  attributes?: Record<string, AttrInput | undefined>;
  name?: string;
}

/**
 * A graph: an ordered node list (intrusive, so insertions and removals are O(1)), its inputs,
 * outputs and initializers. A subgraph (an If branch, a Loop body) has a `parent` scope whose
 * values it may read. All graphs of one model share a NameTable so names stay unique model-wide.
 */
export class Graph {
  name: string;
  docString = "";
  readonly inputs: Value[] = [];
  readonly outputs: Value[] = [];
  readonly initializers = new Map<string, Value>();
  /** Values whose type is recorded in `value_info`, in file order. */
  readonly valueInfo = new Set<Value>();
  readonly metadata = new Map<string, string>();
  /** Fields of the GraphProto the IR does not model. */
  extras: GraphProto;
  readonly names: NameTable;
  readonly parent: Graph | undefined;
  private readonly scope = new Map<string, Value>();
  private head: Node | undefined;
  private tail: Node | undefined;
  private count = 0;

  constructor(name = "main", opts: { parent?: Graph; names?: NameTable; extras?: GraphProto } = {}) {
    this.name = name;
    this.parent = opts.parent;
    this.names = opts.names ?? opts.parent?.names ?? new NameTable();
    this.extras = opts.extras ?? create(GraphProtoSchema);
  }

  get nodeCount(): number {
    return this.count;
  }

  get firstNode(): Node | undefined {
    return this.head;
  }

  get lastNode(): Node | undefined {
    return this.tail;
  }

  /** Iterates the nodes in order; removing the current node during iteration is safe. */
  *nodes(): IterableIterator<Node> {
    let n = this.head;
    while (n) {
      const next = n.next;
      yield n;
      n = next;
    }
  }

  nodeArray(): Node[] {
    return [...this.nodes()];
  }

  /** This graph's nodes and, recursively, those of its subgraphs. */
  *allNodes(): IterableIterator<Node> {
    for (const n of this.nodes()) {
      yield n;
      for (const g of n.subgraphs()) yield* g.allNodes();
    }
  }

  /** The value called `name` in this scope or an enclosing one. */
  lookup(name: string): Value | undefined {
    return this.scope.get(name) ?? this.parent?.lookup(name);
  }

  /** Values defined by this graph (inputs, initializers, node outputs). */
  definedValues(): IterableIterator<Value> {
    return this.scope.values();
  }

  // ---- values -------------------------------------------------------------------------------

  /** A new value owned by this graph with a fresh name derived from `hint`. */
  createValue(hint: string, type?: ValueType): Value {
    const v = new Value(this, this.names.fresh(hint), type);
    this.scope.set(v.name, v);
    return v;
  }

  /** Registers a value read from a file under its exact name. */
  defineValue(name: string, type?: ValueType): Value {
    this.names.claim(name);
    const v = new Value(this, name, type);
    this.scope.set(name, v);
    return v;
  }

  renameValue(v: Value, name: string): void {
    if (v.name === name) return;
    if (this.names.has(name)) throw new Error(`name '${name}' is already in use`);
    this.scope.delete(v.name);
    this.names.claim(name);
    v.name = name;
    this.scope.set(name, v);
  }

  addInput(name: string, dtype: number, shape?: (number | string | undefined)[]): Value {
    const v = this.defineValue(this.names.has(name) ? this.names.fresh(name) : name, tensorType(dtype, shape));
    this.inputs.push(v);
    return v;
  }

  addInitializer(tensor: Tensor, hint = tensor.name || "const"): Value {
    const v = this.createValue(hint);
    tensor.proto.name = v.name;
    v.initializer = tensor;
    v.type = tensorType(tensor.dtype, tensor.dims);
    this.initializers.set(v.name, v);
    return v;
  }

  /** Removes an unused initializer (and its graph input entry, for IR < 4 models). */
  removeInitializer(v: Value): void {
    if (!v.unused) throw new Error(`initializer ${v} is still used`);
    this.initializers.delete(v.name);
    const i = this.inputs.indexOf(v);
    if (i >= 0) this.inputs.splice(i, 1);
    this.forget(v);
  }

  removeInput(v: Value): void {
    if (!v.unused) throw new Error(`input ${v} is still used`);
    const i = this.inputs.indexOf(v);
    if (i >= 0) this.inputs.splice(i, 1);
    if (!v.initializer) this.forget(v);
  }

  setOutput(i: number, v: Value): void {
    this.outputs[i] = v;
  }

  addOutput(v: Value): void {
    this.outputs.push(v);
  }

  // ---- nodes --------------------------------------------------------------------------------

  /**
   * Creates a node with fresh output values and inserts it: at the end of the graph, or before
   * `before` when given.
   */
  addNode(op: string, inputs: readonly (Value | undefined)[], opts: NodeOptions = {}, before?: Node): Node {
    const node = new Node(op, opts.domain ?? "");
    if (opts.name) node.name = this.names.fresh(opts.name);
    for (const v of inputs) node.appendInput(v);
    for (const [k, a] of Object.entries(opts.attributes ?? {})) {
      if (a !== undefined) node.setAttribute(makeAttribute(k, a));
    }
    const outs = opts.outputs ?? 1;
    const hints = typeof outs === "number" ? Array.from({ length: outs }, (_, i) => (outs === 1 ? op : `${op}_out${i}`)) : outs;
    hints.forEach((h, i) => this.attachOutput(node, this.createValue(h), i));
    if (before) this.insertBefore(before, node);
    else this.append(node);
    return node;
  }

  /** Makes `v` output `index` of `node`. */
  attachOutput(node: Node, v: Value, index = node.outputs.length): void {
    v.producer = node;
    v.outputIndex = index;
    node.outputs[index] = v;
  }

  append(node: Node): void {
    this.link(node, this.tail, undefined);
  }

  prepend(node: Node): void {
    this.link(node, undefined, this.head);
  }

  insertBefore(ref: Node, node: Node): void {
    this.assertMember(ref);
    this.link(node, ref.prev, ref);
  }

  insertAfter(ref: Node, node: Node): void {
    this.assertMember(ref);
    this.link(node, ref, ref.next);
  }

  /** Moves `node` (already in this graph) to just before `ref`. */
  moveBefore(ref: Node, node: Node): void {
    this.unlink(node);
    this.insertBefore(ref, node);
  }

  /**
   * Removes a node whose outputs are no longer read, releasing its inputs. Throws when an output
   * is still used: callers replace the uses first.
   */
  remove(node: Node): void {
    this.assertMember(node);
    for (const out of node.outputs) {
      if (out && !out.unused) throw new Error(`cannot remove ${node.describe()}: output ${out} is still used`);
    }
    this.unlink(node);
    node.dropInputs();
    for (const out of node.outputs) if (out) this.forget(out);
  }

  private forget(v: Value): void {
    if (this.scope.get(v.name) === v) this.scope.delete(v.name);
    this.valueInfo.delete(v);
  }

  private link(node: Node, prev: Node | undefined, next: Node | undefined): void {
    if (node.graph) throw new Error(`${node.describe()} is already in a graph`);
    node.graph = this;
    node.prev = prev;
    node.next = next;
    if (prev) prev.next = node;
    else this.head = node;
    if (next) next.prev = node;
    else this.tail = node;
    for (const out of node.outputs) if (out && !this.scope.has(out.name)) this.scope.set(out.name, out);
    this.count++;
  }

  private unlink(node: Node): void {
    if (node.prev) node.prev.next = node.next;
    else this.head = node.next;
    if (node.next) node.next.prev = node.prev;
    else this.tail = node.prev;
    node.prev = node.next = undefined;
    node.graph = undefined;
    this.count--;
  }

  private assertMember(node: Node): void {
    if (node.graph !== this) throw new Error(`${node.describe()} is not in graph '${this.name}'`);
  }
}
