import { create } from "@bufbuild/protobuf";
import {
  AttributeProto_AttributeType as AT,
  AttributeProtoSchema,
  type AttributeProto,
} from "../onnx/generated/onnx_pb.ts";
import type { Graph } from "./graph.ts";
import { Tensor } from "./tensor.ts";

export { AT as AttributeType };

/**
 * A node attribute. Plain values stay in `proto`; a `GRAPH`/`GRAPHS` attribute holds IR graphs
 * (its proto's `g`/`graphs` are cleared and rebuilt on save). Tensor values are Tensor objects so
 * large constants stay unread.
 */
export class Attribute {
  readonly proto: AttributeProto;
  graphs: Graph[];
  tensor: Tensor | undefined;

  constructor(proto: AttributeProto, graphs: Graph[] = [], tensor?: Tensor) {
    this.proto = proto;
    this.graphs = graphs;
    this.tensor = tensor;
  }

  get name(): string {
    return this.proto.name;
  }

  get type(): AT {
    return this.proto.type;
  }

  /** The attribute's value as a plain JS value (ints as numbers). */
  get value(): AttributeValue {
    const p = this.proto;
    switch (p.type) {
      case AT.INT:
        return Number(p.i);
      case AT.FLOAT:
        return p.f;
      case AT.STRING:
        return new TextDecoder().decode(p.s);
      case AT.INTS:
        return p.ints.map(Number);
      case AT.FLOATS:
        return [...p.floats];
      case AT.STRINGS:
        return p.strings.map((s) => new TextDecoder().decode(s));
      case AT.TENSOR:
        return this.tensor!;
      case AT.GRAPH:
        return this.graphs[0]!;
      case AT.GRAPHS:
        return this.graphs;
      default:
        return undefined;
    }
  }

  /** A stable text key for CSE: equal keys mean equal attributes. */
  key(): string {
    const p = this.proto;
    switch (p.type) {
      case AT.TENSOR:
        return `${p.name}:T:${this.tensor!.dtype}:${this.tensor!.dims}:${this.tensor!.contentHash()}`;
      case AT.GRAPH:
      case AT.GRAPHS:
        return `${p.name}:G:${this.graphs.map(graphIdentity).join(",")}`; // equal only if the same graph objects
      case AT.FLOAT:
        return `${p.name}:f:${Object.is(p.f, -0) ? "-0" : p.f}`;
      case AT.FLOATS:
        return `${p.name}:fs:${p.floats.join(",")}`;
      default:
        return `${p.name}:${p.type}:${JSON.stringify(this.value)}:${p.refAttrName}`;
    }
  }
}

const graphIds = new WeakMap<Graph, number>();
let nextGraphId = 1;
function graphIdentity(g: Graph): number {
  let id = graphIds.get(g);
  if (id === undefined) graphIds.set(g, (id = nextGraphId++));
  return id;
}

export type AttributeValue = number | string | number[] | string[] | Tensor | Graph | Graph[] | undefined;

/** Wraps a number so that it is stored as a FLOAT attribute even when it is integral. */
export class FloatAttr {
  constructor(readonly value: number) {}
}
export const float = (v: number): FloatAttr => new FloatAttr(v);

/** Builds an attribute from a JS value: integers become INT, other numbers FLOAT, arrays INTS/FLOATS/STRINGS. */
export function makeAttribute(name: string, value: number | string | FloatAttr | number[] | string[] | Tensor | Graph | FloatAttr[]): Attribute {
  const p = create(AttributeProtoSchema, { name });
  if (value instanceof FloatAttr) {
    p.type = AT.FLOAT;
    p.f = value.value;
  } else if (typeof value === "number") {
    if (Number.isInteger(value)) {
      p.type = AT.INT;
      p.i = BigInt(value);
    } else {
      p.type = AT.FLOAT;
      p.f = value;
    }
  } else if (typeof value === "string") {
    p.type = AT.STRING;
    p.s = new TextEncoder().encode(value);
  } else if (value instanceof Tensor) {
    p.type = AT.TENSOR;
    return new Attribute(p, [], value);
  } else if (Array.isArray(value)) {
    const items = value as unknown[];
    if (items.length > 0 && typeof items[0] === "string") {
      p.type = AT.STRINGS;
      p.strings = (items as string[]).map((s) => new TextEncoder().encode(s));
    } else if (items.some((v) => v instanceof FloatAttr || (typeof v === "number" && !Number.isInteger(v)))) {
      p.type = AT.FLOATS;
      p.floats = items.map((v) => (v instanceof FloatAttr ? v.value : (v as number)));
    } else {
      p.type = AT.INTS;
      p.ints = (items as number[]).map(BigInt);
    }
  } else {
    p.type = AT.GRAPH;
    return new Attribute(p, [value]);
  }
  return new Attribute(p);
}
