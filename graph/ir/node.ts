import { create } from "@bufbuild/protobuf";
import { NodeProtoSchema, type NodeProto } from "../onnx/generated/onnx_pb.ts";
import type { Attribute, AttributeValue } from "./attribute.ts";
import type { Graph } from "./graph.ts";
import type { Use, Value } from "./value.ts";

/** The metadata key under which a rewrite rule stamps the nodes it creates. */
export const PROVENANCE_KEY = "pipec.rule";

/**
 * An operator application. Inputs may be `undefined` (an omitted optional input, `""` in ONNX).
 * Every change to `inputs` goes through `setInput` so that the values' use lists stay correct.
 */
export class Node {
  op: string;
  domain: string;
  overload = "";
  name = "";
  docString = "";
  readonly attributes = new Map<string, Attribute>();
  readonly metadata = new Map<string, string>();
  /** Fields of the NodeProto the IR does not model (unknown fields, device configurations). */
  extras: NodeProto;
  private readonly _inputs: (Value | undefined)[] = [];
  /** The Use record of each input in its value's use list, so releasing an input is O(1). */
  private readonly _uses: (Use | undefined)[] = [];
  /** Output slots; an omitted optional output (`""` in ONNX) is `undefined`. */
  readonly outputs: (Value | undefined)[] = [];
  /** Set while the node is in a graph's node list. */
  graph: Graph | undefined;
  /** Intrusive list links, maintained by Graph. */
  prev: Node | undefined;
  next: Node | undefined;

  constructor(op: string, domain = "", extras?: NodeProto) {
    this.op = op;
    this.domain = domain;
    this.extras = extras ?? create(NodeProtoSchema);
  }

  get inputs(): readonly (Value | undefined)[] {
    return this._inputs;
  }

  /** `domain::op`, or just `op` for the default domain. */
  get qualifiedOp(): string {
    return this.domain && this.domain !== "ai.onnx" ? `${this.domain}::${this.op}` : this.op;
  }

  input(i: number): Value | undefined {
    return this._inputs[i];
  }

  output(i = 0): Value {
    const v = this.outputs[i];
    if (!v) throw new RangeError(`${this.describe()} has no output ${i}`);
    return v;
  }

  setInput(i: number, value: Value | undefined): void {
    while (this._inputs.length <= i) {
      this._inputs.push(undefined);
      this._uses.push(undefined);
    }
    const old = this._inputs[i];
    if (old === value) return;
    if (old) removeUse(old, this._uses[i]!);
    this._inputs[i] = value;
    this._uses[i] = value ? addUse(value, this, i) : undefined;
  }

  appendInput(value: Value | undefined): void {
    this.setInput(this._inputs.length, value);
  }

  /** Drops trailing inputs from index `length` on. */
  truncateInputs(length: number): void {
    for (let i = this._inputs.length - 1; i >= length; i--) {
      this.setInput(i, undefined);
      this._inputs.pop();
      this._uses.pop();
    }
  }

  /** Releases every input (used when the node is removed). */
  dropInputs(): void {
    this.truncateInputs(0);
  }

  attr(name: string): AttributeValue {
    return this.attributes.get(name)?.value;
  }

  attrInt(name: string, fallback: number): number;
  attrInt(name: string): number | undefined;
  attrInt(name: string, fallback?: number): number | undefined {
    const v = this.attr(name);
    return typeof v === "number" ? v : fallback;
  }

  attrFloat(name: string, fallback: number): number;
  attrFloat(name: string): number | undefined;
  attrFloat(name: string, fallback?: number): number | undefined {
    const v = this.attr(name);
    return typeof v === "number" ? v : fallback;
  }

  attrInts(name: string): number[] | undefined {
    const v = this.attr(name);
    return Array.isArray(v) && (v.length === 0 || typeof v[0] === "number") ? (v as number[]) : undefined;
  }

  attrString(name: string): string | undefined {
    const v = this.attr(name);
    return typeof v === "string" ? v : undefined;
  }

  setAttribute(attr: Attribute): void {
    this.attributes.set(attr.name, attr);
  }

  /** Subgraphs held by this node's attributes (If branches, Loop and Scan bodies). */
  subgraphs(): Graph[] {
    const out: Graph[] = [];
    for (const a of this.attributes.values()) out.push(...a.graphs);
    return out;
  }

  describe(): string {
    return `${this.qualifiedOp}${this.name ? ` '${this.name}'` : ""}`;
  }

  toString(): string {
    const outs = this.outputs.map(String).join(", ");
    const ins = this._inputs.map((v) => (v ? String(v) : "")).join(", ");
    return `${outs} = ${this.qualifiedOp}(${ins})`;
  }
}

function addUse(value: Value, node: Node, index: number): Use {
  const use: Use = { node, index, slot: value.uses.length };
  value.uses.push(use);
  return use;
}

/** Swap-remove: O(1) even for a weight read by thousands of nodes (use order is not meaningful). */
function removeUse(value: Value, use: Use): void {
  const last = value.uses.pop()!;
  if (last !== use) {
    value.uses[use.slot] = last;
    last.slot = use.slot;
  }
}
