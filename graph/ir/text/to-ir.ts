/**
 * Builds the IR from the parse tree, the way the .onnx loader builds it from protobuf (same
 * scoping, same value_info bookkeeping), so a printed-and-parsed model prints the same again.
 * Every error names the line and column of the token it concerns.
 */
import { create } from "@bufbuild/protobuf";
import type { IToken } from "chevrotain";
import { PipecError } from "../../errors.ts";
import {
  AttributeProto_AttributeType as AT,
  AttributeProtoSchema,
  ModelProtoSchema,
  StringStringEntryProtoSchema,
  TensorProtoSchema,
  TensorShapeProto_DimensionSchema,
  TensorShapeProtoSchema,
  TypeProto_MapSchema,
  TypeProto_OpaqueSchema,
  TypeProto_OptionalSchema,
  TypeProto_SequenceSchema,
  TypeProto_SparseTensorSchema,
  TypeProto_TensorSchema,
  TypeProtoSchema,
  ValueInfoProtoSchema,
  type AttributeProto,
  type TensorShapeProto,
  type TypeProto,
} from "../../onnx/generated/onnx_pb.ts";
import { Attribute } from "../attribute.ts";
import { DataType as DT, byteSize, dtypeFromName } from "../dtype.ts";
import { setInfo } from "../from-proto.ts";
import { Graph } from "../graph.ts";
import { Model, ModelFunction } from "../model.ts";
import { Node } from "../node.ts";
import { Tensor } from "../tensor.ts";
import { tensorToProto } from "../to-proto.ts";
import { Value, type ValueInfoRole } from "../value.ts";
import type { AttributeAst, ConstantDataAst, FunctionAst, GraphAst, HeaderEntryAst, ModelAst, NodeAst, SingleAttrValueAst, TensorAst, TypeAst, ValueInfoAst } from "./ast.ts";
import { ElidedTensor } from "./elided-tensor.ts";
import { unquote } from "./identifiers.ts";

export function modelFromAst(ast: ModelAst, file: string): Model {
  return new IrBuilder(file).model(ast);
}

const ATTRIBUTE_TYPES: Record<string, AT> = {
  float: AT.FLOAT,
  int: AT.INT,
  string: AT.STRING,
  tensor: AT.TENSOR,
  graph: AT.GRAPH,
  type_proto: AT.TYPE_PROTO,
  floats: AT.FLOATS,
  ints: AT.INTS,
  strings: AT.STRINGS,
  tensors: AT.TENSORS,
  graphs: AT.GRAPHS,
  type_protos: AT.TYPE_PROTOS,
};

/** A list attribute's type from its element kind. */
const LIST_OF: Partial<Record<AT, AT>> = {
  [AT.FLOAT]: AT.FLOATS,
  [AT.INT]: AT.INTS,
  [AT.STRING]: AT.STRINGS,
  [AT.TENSOR]: AT.TENSORS,
  [AT.GRAPH]: AT.GRAPHS,
  [AT.TYPE_PROTO]: AT.TYPE_PROTOS,
};

const ELEMENT_OF = new Map(Object.entries(LIST_OF).map(([elem, list]) => [list, Number(elem) as AT]));

class IrBuilder {
  constructor(private readonly file: string) {}

  private fail(at: IToken, message: string): never {
    throw new PipecError("text-syntax", message, { file: this.file, line: at.startLine, column: at.startColumn });
  }

  private id(t: IToken): string {
    return t.tokenType.name === "Str" ? unquote(t.image) : t.image;
  }

  model(ast: ModelAst): Model {
    const extras = create(ModelProtoSchema);
    const opsets = new Map<string, number>();
    let irVersion = 10;
    for (const { key, value } of ast.header) {
      switch (key.image) {
        case "ir_version":
          irVersion = this.integer(this.scalar(value, key));
          break;
        case "opset_import":
          for (const [d, v] of this.pairs(value, key)) opsets.set(unquote(d.image), this.integer(v));
          break;
        case "producer_name":
          extras.producerName = this.string(value, key);
          break;
        case "producer_version":
          extras.producerVersion = this.string(value, key);
          break;
        case "domain":
          extras.domain = this.string(value, key);
          break;
        case "model_version":
          extras.modelVersion = BigInt(this.integer(this.scalar(value, key)));
          break;
        case "doc_string":
          extras.docString = this.string(value, key);
          break;
        case "metadata_props":
          extras.metadataProps = this.pairs(value, key).map(([k, v]) => create(StringStringEntryProtoSchema, { key: unquote(k.image), value: this.string(v, k) }));
          break;
        default:
          this.fail(key, `unknown model field '${key.image}'`);
      }
    }
    const model = new Model({ irVersion, opsets: opsets.size > 0 ? opsets : undefined, extras });
    this.fillGraph(model.graph, ast.graph);
    for (const fn of ast.functions) model.functions.push(this.function(fn));
    return model;
  }

  private scalar(value: HeaderEntryAst["value"], key: IToken): IToken {
    if (Array.isArray(value)) this.fail(key, `'${key.image}' takes a single value, not a list`);
    return value;
  }

  private pairs(value: HeaderEntryAst["value"], key: IToken): [IToken, IToken][] {
    if (!Array.isArray(value)) this.fail(value, `'${key.image}' takes a list of "key": value pairs`);
    return value;
  }

  private string(value: HeaderEntryAst["value"] | IToken, key: IToken): string {
    const t = this.scalar(value, key);
    if (t.tokenType.name !== "Str") this.fail(t, `expected a quoted string but found '${t.image}'`);
    return unquote(t.image);
  }

  private integer(t: IToken): number {
    if (!/^-?\d+$/.test(t.image)) this.fail(t, `expected an integer but found '${t.image}'`);
    return Number(t.image);
  }

  // ---- graphs -------------------------------------------------------------------------------

  private fillGraph(graph: Graph, ast: GraphAst): void {
    graph.name = this.id(ast.name);
    for (const vi of ast.inputs) {
      const v = this.define(graph, vi.name);
      this.setInfo(v, "input", vi);
      graph.inputs.push(v);
      if (vi.data) this.setInitializer(graph, v, vi);
    }
    const infos: ValueInfoAst[] = [];
    for (const vi of ast.inner) {
      if (!vi.data) {
        infos.push(vi);
        continue;
      }
      const name = this.id(vi.name);
      const input = graph.inputs.find((v) => v.name === name && !v.initializer);
      this.setInitializer(graph, input ?? this.define(graph, vi.name), vi);
    }
    const nodes = ast.nodes.map((n) => this.node(graph, n));
    for (const vi of infos) {
      const name = this.id(vi.name);
      const v = graph.lookup(name) ?? new Value(graph, name); // kept detached, as the loader does
      this.setInfo(v, "valueInfo", vi);
      graph.valueInfo.add(v);
    }
    // Inputs and attributes after every node's outputs exist: a node may read a later node's output.
    nodes.forEach((node, i) => this.connect(graph, node, ast.nodes[i]!));
    for (const vi of ast.outputs) {
      const v = graph.lookup(this.id(vi.name)) ?? this.fail(vi.name, `graph '${graph.name}' lists output '${this.id(vi.name)}', which nothing defines`);
      this.setInfo(v, "output", vi);
      graph.outputs.push(v);
    }
  }

  private define(graph: Graph, name: IToken): Value {
    const n = this.id(name);
    if (graph.lookup(n)) this.fail(name, `'${n}' is defined a second time (values must be assigned once)`);
    return graph.defineValue(n);
  }

  private setInfo(v: Value, role: ValueInfoRole, vi: ValueInfoAst): void {
    setInfo(v, role, create(ValueInfoProtoSchema, { name: v.name, type: vi.type ? this.type(vi.type) : undefined }));
  }

  private setInitializer(graph: Graph, v: Value, vi: ValueInfoAst): void {
    if (!vi.type) this.fail(vi.name, `initializer '${v.name}' needs a type`);
    const tensor = this.tensor({ type: vi.type, name: vi.name, data: vi.data! });
    v.initializer = tensor;
    if (!v.type) v.type = { kind: "tensor", dtype: tensor.dtype, shape: tensor.dims };
    graph.initializers.set(v.name, v);
  }

  private node(graph: Graph, ast: NodeAst): Node {
    const op = ast.op[ast.op.length - 1]!.image;
    const domain = ast.op
      .slice(0, -1)
      .map((t) => t.image)
      .join(".");
    const node = new Node(op, domain);
    if (ast.label) node.name = node.extras.name = this.id(ast.label); // `[""]`: a name present but empty
    if (ast.overload) node.overload = ast.overload.image;
    node.outputs.length = ast.outputs.length;
    ast.outputs.forEach((t, i) => {
      if (this.id(t) !== "") graph.attachOutput(node, this.define(graph, t), i);
    });
    graph.append(node);
    return node;
  }

  private connect(graph: Graph, node: Node, ast: NodeAst): void {
    ast.inputs.forEach((t, i) => {
      const name = this.id(t);
      if (name === "") return node.setInput(i, undefined);
      const v = graph.lookup(name) ?? this.fail(t, `${node.op} reads '${name}', which no node, graph input or initializer defines`);
      node.setInput(i, v);
    });
    for (const a of ast.attributes) {
      if (node.attributes.has(a.name.image)) this.fail(a.name, `attribute '${a.name.image}' is given twice`);
      node.setAttribute(this.attribute(graph, a));
    }
  }

  private function(ast: FunctionAst): ModelFunction {
    let domain = "";
    let overload = "";
    const opsets = new Map<string, number>();
    for (const { key, value } of ast.header) {
      if (key.image === "domain") domain = this.string(value, key);
      else if (key.image === "overload") overload = this.string(value, key);
      else if (key.image === "opset_import") for (const [d, v] of this.pairs(value, key)) opsets.set(unquote(d.image), this.integer(v));
      else this.fail(key, `unknown function field '${key.image}'`);
    }
    const attributeNames = ast.attributes.filter((a): a is IToken => "image" in a).map((a) => a.image);
    const fn = new ModelFunction(this.id(ast.name), domain, { overload, attributeNames, opsets });
    const body = fn.body;
    body.name = fn.name;
    // Attributes written with a value are defaults (FunctionProto.attribute_proto).
    fn.extras.attributeProto = ast.attributes.filter((a): a is AttributeAst => !("image" in a)).map((a) => this.attribute(body, a).proto);
    for (const vi of ast.inputs) body.inputs.push(this.define(body, vi.name));
    const nodes = ast.nodes.map((n) => this.node(body, n));
    for (const vi of ast.valueInfos) {
      const name = this.id(vi.name);
      const v = body.lookup(name) ?? new Value(body, name);
      this.setInfo(v, "valueInfo", vi);
      body.valueInfo.add(v);
    }
    nodes.forEach((node, i) => this.connect(body, node, ast.nodes[i]!));
    for (const vi of ast.outputs) {
      body.outputs.push(body.lookup(this.id(vi.name)) ?? this.fail(vi.name, `function '${fn.name}' lists output '${this.id(vi.name)}', which nothing defines`));
    }
    return fn;
  }

  // ---- attributes ---------------------------------------------------------------------------

  private attribute(graph: Graph, ast: AttributeAst): Attribute {
    const proto = create(AttributeProtoSchema, { name: ast.name.image });
    let declared: AT | undefined;
    if (ast.type) declared = ATTRIBUTE_TYPES[ast.type.image] ?? this.fail(ast.type, `unknown attribute type '${ast.type.image}'`);
    const value = ast.value;
    if (value.kind === "ref") {
      proto.refAttrName = value.name.image;
      proto.type = declared ?? this.fail(ast.name, `attribute '${ast.name.image}' refers to '@${value.name.image}' and needs a type`);
      return new Attribute(proto);
    }
    const graphs: Graph[] = [];
    let tensor: Tensor | undefined;
    const items = value.kind === "list" ? value.items : [value];
    const kinds = items.map((item) => this.kindOf(item, declared, value.kind === "list"));
    let type: AT;
    if (value.kind === "list") {
      const inferred = kinds.includes(AT.FLOAT) && kinds.every((k) => k === AT.FLOAT || k === AT.INT) ? AT.FLOAT : (kinds[0] ?? AT.INT);
      type = declared ?? LIST_OF[inferred]!;
      const elem = ELEMENT_OF.get(type) ?? this.fail(value.open, `attribute '${proto.name}' is declared ${typeName(type)} but has a list value`);
      items.forEach((item, i) => this.checkKind(kinds[i]!, elem, item, proto.name));
    } else {
      type = declared ?? kinds[0]!;
      this.checkKind(kinds[0]!, type, value, proto.name);
    }
    proto.type = type;
    for (const item of items) {
      if (item.kind === "graph") {
        const sub = new Graph(this.id(item.graph.name), { parent: graph });
        this.fillGraph(sub, item.graph);
        graphs.push(sub);
      } else if (item.kind === "tensor") {
        const t = this.tensor(item.tensor);
        if (type === AT.TENSOR) tensor = t;
        else proto.tensors.push(tensorToProto(t));
      } else if (item.kind === "type") {
        if (type === AT.TYPE_PROTO) proto.tp = this.type(item.type);
        else proto.typeProtos.push(this.type(item.type));
      } else {
        this.primitive(proto, type, item.token);
      }
    }
    return new Attribute(proto, graphs, tensor);
  }

  /** The attribute type a single value has (a number is a float when written as one or declared so). */
  private kindOf(item: SingleAttrValueAst, declared: AT | undefined, inList: boolean): AT {
    if (item.kind === "graph") return AT.GRAPH;
    if (item.kind === "tensor") return AT.TENSOR;
    if (item.kind === "type") return AT.TYPE_PROTO;
    const t = item.token;
    if (t.tokenType.name === "Str") return AT.STRING;
    const wantsFloat = declared === (inList ? AT.FLOATS : AT.FLOAT);
    return wantsFloat || !/^-?\d+$/.test(t.image) ? AT.FLOAT : AT.INT;
  }

  private checkKind(kind: AT, expected: AT, item: SingleAttrValueAst, name: string): void {
    if (kind === expected || (kind === AT.INT && expected === AT.FLOAT)) return; // `2` is a fine float
    this.fail(firstToken(item), `attribute '${name}' expects a value of type ${typeName(expected)} but found ${typeName(kind)}`);
  }

  private primitive(proto: AttributeProto, type: AT, t: IToken): void {
    switch (type) {
      case AT.INT:
        this.integer(t);
        proto.i = BigInt(t.image);
        break;
      case AT.INTS:
        this.integer(t);
        proto.ints.push(BigInt(t.image));
        break;
      case AT.FLOAT:
        proto.f = this.float(t);
        break;
      case AT.FLOATS:
        proto.floats.push(this.float(t));
        break;
      case AT.STRING:
        proto.s = new TextEncoder().encode(unquote(t.image));
        break;
      case AT.STRINGS:
        proto.strings.push(new TextEncoder().encode(unquote(t.image)));
        break;
    }
  }

  /** A float attribute's value: float32, as the proto stores it. */
  private float(t: IToken): number {
    const v = parseFloatText(t.image);
    if (v === undefined) this.fail(t, `expected a number but found '${t.image}'`);
    return Math.fround(v);
  }

  // ---- types and tensors --------------------------------------------------------------------

  private dtype(t: IToken): number {
    return dtypeFromName(t.image) ?? this.fail(t, `unknown element type '${t.image}'`);
  }

  private type(ast: TypeAst): TypeProto {
    switch (ast.kind) {
      case "tensor":
        return create(TypeProtoSchema, { value: { case: "tensorType", value: create(TypeProto_TensorSchema, { elemType: this.dtype(ast.elem), shape: this.shape(ast.dims) }) } });
      case "sparse_tensor":
        return create(TypeProtoSchema, {
          value: { case: "sparseTensorType", value: create(TypeProto_SparseTensorSchema, { elemType: this.dtype(ast.elem), shape: this.shape(ast.dims) }) },
        });
      case "seq":
        return create(TypeProtoSchema, { value: { case: "sequenceType", value: create(TypeProto_SequenceSchema, { elemType: this.type(ast.elem) }) } });
      case "optional":
        return create(TypeProtoSchema, { value: { case: "optionalType", value: create(TypeProto_OptionalSchema, { elemType: this.type(ast.elem) }) } });
      case "map":
        return create(TypeProtoSchema, { value: { case: "mapType", value: create(TypeProto_MapSchema, { keyType: this.dtype(ast.key), valueType: this.type(ast.value) }) } });
      case "opaque": {
        const [a, b] = ast.parts.map((p) => p.image);
        const value = b === undefined ? create(TypeProto_OpaqueSchema, { name: a ?? "" }) : create(TypeProto_OpaqueSchema, { domain: a, name: b });
        return create(TypeProtoSchema, { value: { case: "opaqueType", value } });
      }
    }
  }

  /** `[]` in the text (dims undefined) is an unknown rank: no shape at all. */
  private shape(dims: IToken[] | undefined): TensorShapeProto | undefined {
    if (!dims) return undefined;
    return create(TensorShapeProtoSchema, {
      dim: dims.map((d) => {
        const kind = d.tokenType.name;
        const value =
          kind === "Question" ? { case: undefined } : kind === "Num" ? { case: "dimValue" as const, value: BigInt(this.integer(d)) } : { case: "dimParam" as const, value: this.id(d) };
        return create(TensorShapeProto_DimensionSchema, { value });
      }),
    });
  }

  private tensor(ast: TensorAst): Tensor {
    if (ast.type.kind !== "tensor") this.fail(ast.name ?? dataToken(ast.data), "a constant must have a tensor type");
    const dtype = this.dtype(ast.type.elem);
    const dims = (ast.type.dims ?? []).map((d) => (d.tokenType.name === "Num" ? this.integer(d) : this.fail(d, `a constant's shape must be numbers, not '${d.image}'`)));
    const name = ast.name ? this.id(ast.name) : "";
    const data = ast.data;
    switch (data.kind) {
      case "hash":
        return new ElidedTensor(name, dtype, dims, data.token.image.slice("<sha:".length, -1));
      case "elided":
        return new ElidedTensor(name, dtype, dims);
      case "external":
        return this.fail(data.open, `tensor '${name}' refers to external data, which the text form does not read; print the model with its weight values`);
      case "values":
        return this.tensorValues(name, dtype, dims, data);
    }
  }

  private tensorValues(name: string, dtype: number, dims: number[], data: Extract<ConstantDataAst, { kind: "values" }>): Tensor {
    const count = dims.reduce((n, d) => n * d, 1);
    if (data.values.length !== count) this.fail(data.open, `tensor '${name}' has shape [${dims}] (${count} values) but ${data.values.length} are given`);
    if (dtype === DT.STRING) {
      const stringData = data.values.map((v) => (v.tokenType.name === "Str" ? new TextEncoder().encode(unquote(v.image)) : this.fail(v, `expected a quoted string but found '${v.image}'`)));
      return new Tensor(create(TensorProtoSchema, { name, dataType: dtype, dims: dims.map(BigInt), stringData }));
    }
    const write = VALUE_WRITERS[dtype] ?? this.fail(data.open, `values of element type ${DT[dtype]?.toLowerCase() ?? dtype} cannot be written in text`);
    const bytes = new Uint8Array(byteSize(dtype, count));
    const view = new DataView(bytes.buffer);
    data.values.forEach((t, i) => {
      if (t.tokenType.name === "Str") this.fail(t, `expected a number but found ${t.image}`);
      const ok = write(view, i, t.image);
      if (!ok) this.fail(t, `'${t.image}' is not a valid ${DT[dtype]?.toLowerCase()} value`);
    });
    return Tensor.fromBytes(name, dtype, dims, bytes);
  }
}

function firstToken(item: SingleAttrValueAst): IToken {
  switch (item.kind) {
    case "token":
      return item.token;
    case "graph":
      return item.graph.name;
    case "tensor":
      return typeToken(item.tensor.type) ?? dataToken(item.tensor.data);
    case "type":
      return typeToken(item.type)!;
  }
}

function typeToken(t: TypeAst): IToken | undefined {
  switch (t.kind) {
    case "tensor":
    case "sparse_tensor":
      return t.elem;
    case "seq":
    case "optional":
      return typeToken(t.elem);
    case "map":
      return t.key;
    case "opaque":
      return t.parts[0];
  }
}

function dataToken(d: ConstantDataAst): IToken {
  return d.kind === "values" || d.kind === "external" ? d.open : d.token;
}

function typeName(t: AT): string {
  return Object.entries(ATTRIBUTE_TYPES).find(([, v]) => v === t)?.[0] ?? String(t);
}

/** `1.5`, `1e-05`, `nan`, `-nan`, `inf`, `-inf`; undefined when not a number. */
export function parseFloatText(s: string): number | undefined {
  const body = s.startsWith("-") ? s.slice(1) : s;
  if (body === "nan") return NaN;
  if (body === "inf") return s.startsWith("-") ? -Infinity : Infinity;
  const v = Number(s);
  return s.trim() === "" || Number.isNaN(v) ? undefined : v;
}

/** Writes element `i` from its text; false when the text is not a value of the type. */
type ValueWriter = (view: DataView, i: number, text: string) => boolean;

function intWriter(bits: 8 | 16 | 32, signed: boolean, set: (view: DataView, i: number, v: number) => void): ValueWriter {
  const min = signed ? -(2 ** (bits - 1)) : 0;
  const max = signed ? 2 ** (bits - 1) - 1 : 2 ** bits - 1;
  return (view, i, text) => {
    if (!/^-?\d+$/.test(text)) return false;
    const v = Number(text);
    if (v < min || v > max) return false;
    set(view, i, v);
    return true;
  };
}

function bigWriter(signed: boolean): ValueWriter {
  return (view, i, text) => {
    if (!/^-?\d+$/.test(text)) return false;
    const v = BigInt(text);
    if (signed ? v < -(1n << 63n) || v >= 1n << 63n : v < 0n || v >= 1n << 64n) return false;
    if (signed) view.setBigInt64(i * 8, v, true);
    else view.setBigUint64(i * 8, v, true);
    return true;
  };
}

function floatWriter(bytes: 4 | 8): ValueWriter {
  return (view, i, text) => {
    const v = parseFloatText(text);
    if (v === undefined) return false;
    if (bytes === 4) view.setFloat32(i * 4, v, true);
    else view.setFloat64(i * 8, v, true);
    // A NaN's sign survives only in its bits.
    if (text === "-nan") view.setUint8(i * bytes + bytes - 1, view.getUint8(i * bytes + bytes - 1) | 0x80);
    return true;
  };
}

const uint8 = intWriter(8, false, (d, i, v) => d.setUint8(i, v));
const uint16 = intWriter(16, false, (d, i, v) => d.setUint16(i * 2, v, true));

/** Per element type, the inverse of the printer's VALUE_FORMAT (float16/bfloat16 as bit patterns). */
const VALUE_WRITERS: Partial<Record<number, ValueWriter>> = {
  [DT.FLOAT]: floatWriter(4),
  [DT.DOUBLE]: floatWriter(8),
  [DT.INT8]: intWriter(8, true, (d, i, v) => d.setInt8(i, v)),
  [DT.UINT8]: uint8,
  [DT.BOOL]: uint8,
  [DT.FLOAT8E4M3FN]: uint8,
  [DT.FLOAT8E4M3FNUZ]: uint8,
  [DT.FLOAT8E5M2]: uint8,
  [DT.FLOAT8E5M2FNUZ]: uint8,
  [DT.INT16]: intWriter(16, true, (d, i, v) => d.setInt16(i * 2, v, true)),
  [DT.UINT16]: uint16,
  [DT.FLOAT16]: uint16,
  [DT.BFLOAT16]: uint16,
  [DT.INT32]: intWriter(32, true, (d, i, v) => d.setInt32(i * 4, v, true)),
  [DT.UINT32]: intWriter(32, false, (d, i, v) => d.setUint32(i * 4, v, true)),
  [DT.INT64]: bigWriter(true),
  [DT.UINT64]: bigWriter(false),
};
