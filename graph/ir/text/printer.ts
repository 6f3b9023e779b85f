/**
 * Prints the IR in ONNX's textual syntax (onnx/docs/Syntax.md), byte for byte as
 * `onnx.printer.to_text` prints the same model when weights are printed as values.
 *
 * Weights. Printing every value of a large model is useless and reading it is slow, so tensors
 * with more than `inlineWeightsUpTo` elements (default 16) are summarised, as chosen by `weights`:
 *   "shape-only" (default)  `float[4096,4096] w = <elided>`        reads no bytes at all
 *   "hash"                  `float[4096,4096] w = <sha:3fa2c1e9b0d4>` reads the bytes to hash them
 *                           (Tensor.contentHash: sha256, sampled above 64 MiB)
 *   "values"                every value, as onnx.printer prints it
 * `<sha:HEX>` and `<elided>` are pipec's extension of the syntax: they stand where `{...}` would,
 * after an initializer's `=` or a tensor attribute's type and name. The parser reads them back as
 * ElidedTensor placeholders. Tensors onnx.printer cannot print either (complex, 4-bit and 2-bit
 * types, where it writes `...`) are always summarised: hashed unless the mode is "shape-only".
 *
 * Deviations from onnx.printer, all deliberate: tensors kept in external data files print their
 * values (or summary), not their `["location": ...]` reference; nothing else differs.
 *
 * Output is built as a list of string pieces joined once, so printing is linear in model size.
 */
import { isFieldSet } from "@bufbuild/protobuf";
import { AttributeProto_AttributeType as AT, ModelProtoSchema, NodeProtoSchema, type TypeProto } from "../../onnx/generated/onnx_pb.ts";
import type { Attribute } from "../attribute.ts";
import { DataType as DT, dtypeName } from "../dtype.ts";
import type { Graph } from "../graph.ts";
import type { Model, ModelFunction } from "../model.ts";
import type { Node } from "../node.ts";
import { Tensor } from "../tensor.ts";
import { valueInfoToProto } from "../to-proto.ts";
import type { Value, ValueInfoRole } from "../value.ts";
import { ElidedTensor } from "./elided-tensor.ts";
import { formatFloat32, formatFloat64 } from "./format-number.ts";
import { printId, printQuoted } from "./identifiers.ts";

export type WeightsMode = "shape-only" | "hash" | "values";

export interface PrintOptions {
  /** Tensors with at most this many elements always print their values. Default 16. */
  inlineWeightsUpTo?: number;
  /** How larger tensors print. Default "shape-only". */
  weights?: WeightsMode;
}

export function printModel(model: Model, opts: PrintOptions = {}): string {
  const p = new Printer(opts);
  p.model(model);
  return p.text();
}

/** A graph alone (signature, initializers, nodes), at the top level's indentation. */
export function printGraph(graph: Graph, opts: PrintOptions = {}): string {
  const p = new Printer(opts);
  p.graph(graph, 3);
  return p.text();
}

const INDENT = 3;

const ATTRIBUTE_TYPE_NAMES: Partial<Record<AT, string>> = {
  [AT.FLOAT]: "float",
  [AT.INT]: "int",
  [AT.STRING]: "string",
  [AT.TENSOR]: "tensor",
  [AT.GRAPH]: "graph",
  [AT.SPARSE_TENSOR]: "sparse_tensor",
  [AT.TYPE_PROTO]: "type_proto",
  [AT.FLOATS]: "floats",
  [AT.INTS]: "ints",
  [AT.STRINGS]: "strings",
  [AT.TENSORS]: "tensors",
  [AT.GRAPHS]: "graphs",
  [AT.SPARSE_TENSORS]: "sparse_tensors",
  [AT.TYPE_PROTOS]: "type_protos",
};

class Printer {
  private readonly out: string[] = [];
  private readonly inlineUpTo: number;
  private readonly weights: WeightsMode;

  constructor(opts: PrintOptions) {
    this.inlineUpTo = opts.inlineWeightsUpTo ?? 16;
    this.weights = opts.weights ?? "shape-only";
  }

  text(): string {
    return this.out.join("");
  }

  private w(s: string): void {
    this.out.push(s);
  }

  model(model: Model): void {
    const x = model.extras;
    const opsets = [...model.opsets].map(([domain, version]) => `${printQuoted(domain)} : ${version}`);
    this.w(`<\n   ir_version: ${model.irVersion},\n   opset_import: [${opsets.join(", ")}]`);
    const has = (f: keyof typeof ModelProtoSchema.field) => isFieldSet(x, ModelProtoSchema.field[f]);
    if (has("producerName")) this.w(`,\n   producer_name: ${printQuoted(x.producerName)}`);
    if (has("producerVersion")) this.w(`,\n   producer_version: ${printQuoted(x.producerVersion)}`);
    if (has("domain")) this.w(`,\n   domain: ${printQuoted(x.domain)}`);
    if (has("modelVersion")) this.w(`,\n   model_version: ${x.modelVersion}`);
    if (has("docString")) this.w(`,\n   doc_string: ${printQuoted(x.docString)}`);
    if (x.metadataProps.length > 0) {
      this.w(`,\n   metadata_props: [${x.metadataProps.map((e) => `${printQuoted(e.key)}: ${printQuoted(e.value)}`).join(", ")}]`);
    }
    this.w("\n>\n");
    this.graph(model.graph, INDENT);
    for (const fn of model.functions) {
      this.w("\n");
      this.function(fn);
    }
  }

  graph(g: Graph, indent: number): void {
    this.w(printId(g.name));
    this.w(` (${g.inputs.map((v) => this.valueInfo(v, "input")).join(", ")})`);
    this.w(` => (${g.outputs.map((v) => this.valueInfo(v, "output")).join(", ")}) `);
    const infos = [...g.valueInfo].filter((v) => v.type || v.infos.valueInfo);
    if (g.initializers.size > 0 || infos.length > 0) {
      this.w(`\n${" ".repeat(indent)}<`);
      let sep = "";
      for (const v of g.initializers.values()) {
        this.w(sep);
        this.tensor(v.initializer!, true);
        sep = ", ";
      }
      for (const v of infos) {
        this.w(sep + this.valueInfo(v, "valueInfo"));
        sep = ", ";
      }
      this.w(">\n");
    }
    this.nodeList(g, indent);
  }

  private nodeList(g: Graph, indent: number): void {
    this.w("{\n");
    for (const n of g.nodes()) this.node(n, indent);
    if (indent > INDENT) this.w(" ".repeat(indent - INDENT));
    this.w("}");
  }

  private function(fn: ModelFunction): void {
    this.w(`<\n  domain: ${printQuoted(fn.domain)},\n`);
    if (fn.overload) this.w(`  overload: ${printQuoted(fn.overload)},\n`);
    const opsets = [...fn.opsets].map(([domain, version]) => `${printQuoted(domain)} : ${version}`);
    this.w(`  opset_import: [${opsets.join(",")}]\n>\n`);
    this.w(`${printId(fn.name)} `);
    if (fn.attributeNames.length > 0) this.w(`<${fn.attributeNames.join(",")}>`);
    this.w(`(${fn.body.inputs.map((v) => printId(v.name)).join(", ")}) => (${fn.body.outputs.map((v) => printId(v.name)).join(", ")})\n`);
    this.nodeList(fn.body, INDENT);
  }

  private node(n: Node, indent: number): void {
    this.w(" ".repeat(indent));
    // onnx.printer labels a node whose name is present even when empty.
    if (n.name || isFieldSet(n.extras, NodeProtoSchema.field.name)) this.w(`[${printId(n.name)}] `);
    this.w(Array.from(n.outputs, (v) => printId(v?.name ?? "")).join(", "));
    this.w(` = ${n.domain ? `${n.domain}.` : ""}${n.op}${n.overload ? `:${n.overload}` : ""}`);
    const attrs = [...n.attributes.values()];
    const hasSubgraph = attrs.some((a) => a.graphs.length > 0);
    if (!hasSubgraph && attrs.length > 0) this.attributes(attrs, indent);
    this.w(` (${n.inputs.map((v) => printId(v?.name ?? "")).join(", ")})`);
    if (hasSubgraph) this.attributes(attrs, indent);
    this.w("\n");
  }

  private attributes(attrs: Attribute[], indent: number): void {
    this.w(" <");
    attrs.forEach((a, i) => {
      if (i > 0) this.w(", ");
      this.attribute(a, indent);
    });
    this.w(">");
  }

  private attribute(a: Attribute, indent: number): void {
    const p = a.proto;
    this.w(`${p.name}: ${ATTRIBUTE_TYPE_NAMES[p.type] ?? ""} = `);
    if (p.refAttrName) {
      this.w(`@${p.refAttrName}`);
      return;
    }
    const decode = (s: Uint8Array) => printQuoted(new TextDecoder().decode(s));
    switch (p.type) {
      case AT.INT:
        return this.w(String(p.i));
      case AT.INTS:
        return this.w(`[${p.ints.join(", ")}]`);
      case AT.FLOAT:
        return this.w(formatFloat32(p.f));
      case AT.FLOATS:
        return this.w(`[${p.floats.map((f) => formatFloat32(f)).join(", ")}]`);
      case AT.STRING:
        return this.w(decode(p.s));
      case AT.STRINGS:
        return this.w(`[${p.strings.map(decode).join(", ")}]`);
      case AT.GRAPH:
        return this.graph(a.graphs[0]!, indent + INDENT);
      case AT.GRAPHS:
        this.w("[");
        a.graphs.forEach((g, i) => {
          if (i > 0) this.w(", ");
          this.graph(g, indent + INDENT);
        });
        return this.w("]");
      case AT.TENSOR:
        return this.tensor(a.tensor!, false);
      case AT.TENSORS:
        this.w("[");
        p.tensors.forEach((t, i) => {
          if (i > 0) this.w(", ");
          this.tensor(new Tensor(t), false);
        });
        return this.w("]");
      case AT.TYPE_PROTO:
        return this.w(p.tp ? printType(p.tp) : "");
      case AT.TYPE_PROTOS:
        return this.w(`[${p.typeProtos.map(printType).join(", ")}]`);
    }
  }

  private valueInfo(v: Value, role: ValueInfoRole): string {
    const type = valueInfoToProto(v, role).type;
    return `${type ? printType(type) : ""} ${printId(v.name)}`;
  }

  /** `float[2,3] name = {…}` for an initializer, `float[2,3] name {…}` for an attribute value. */
  private tensor(t: Tensor, isInitializer: boolean): void {
    this.w(dtypeName(t.dtype));
    if (t.proto.dims.length > 0) this.w(`[${t.proto.dims.join(",")}]`);
    if (t.name) this.w(` ${printId(t.name)}`);
    if (isInitializer) this.w(" = ");
    const summary = this.summary(t);
    if (summary !== undefined) this.w(isInitializer ? summary : ` ${summary}`);
    else this.w(printValues(t));
  }

  /** The placeholder standing for `t`'s values, or undefined when they are printed. */
  private summary(t: Tensor): string | undefined {
    const printable = !(t instanceof ElidedTensor) && VALUE_FORMAT[t.dtype] !== undefined;
    if (printable && (this.weights === "values" || t.elementCount <= this.inlineUpTo)) return undefined;
    if (this.weights === "shape-only" || (t instanceof ElidedTensor && !t.hash)) return "<elided>";
    return `<sha:${t.contentHash()}>`;
  }
}

type ValueFormat = (view: DataView, i: number) => string;

const float32: ValueFormat = (d, i) => formatFloat32(d.getFloat32(i * 4, true), (d.getUint32(i * 4, true) & 0x80000000) !== 0);
const float64: ValueFormat = (d, i) => formatFloat64(d.getFloat64(i * 8, true), (d.getUint32(i * 8 + 4, true) & 0x80000000) !== 0);
const uint8: ValueFormat = (d, i) => String(d.getUint8(i));
const uint16: ValueFormat = (d, i) => String(d.getUint16(i * 2, true));

/** Per element type, one element of little-endian data as onnx.printer writes it. */
const VALUE_FORMAT: Partial<Record<number, ValueFormat>> = {
  [DT.FLOAT]: float32,
  [DT.DOUBLE]: float64,
  [DT.INT8]: (d, i) => String(d.getInt8(i)),
  [DT.UINT8]: uint8,
  [DT.BOOL]: uint8,
  [DT.FLOAT8E4M3FN]: uint8,
  [DT.FLOAT8E4M3FNUZ]: uint8,
  [DT.FLOAT8E5M2]: uint8,
  [DT.FLOAT8E5M2FNUZ]: uint8,
  [DT.INT16]: (d, i) => String(d.getInt16(i * 2, true)),
  // float16 and bfloat16 print their bit patterns, as onnx.printer does.
  [DT.UINT16]: uint16,
  [DT.FLOAT16]: uint16,
  [DT.BFLOAT16]: uint16,
  [DT.INT32]: (d, i) => String(d.getInt32(i * 4, true)),
  [DT.UINT32]: (d, i) => String(d.getUint32(i * 4, true)),
  [DT.INT64]: (d, i) => String(d.getBigInt64(i * 8, true)),
  [DT.UINT64]: (d, i) => String(d.getBigUint64(i * 8, true)),
  [DT.STRING]: () => "",
};

/** ` {1,2,3}` (onnx.printer's spacing), or `{"a", "b"}` for strings. */
function printValues(t: Tensor): string {
  if (t.dtype === DT.STRING) return `{${t.proto.stringData.map((s) => printQuoted(new TextDecoder().decode(s))).join(", ")}}`;
  const bytes = t.bytes();
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const format = VALUE_FORMAT[t.dtype]!;
  const parts = new Array<string>(t.elementCount);
  for (let i = 0; i < parts.length; i++) parts[i] = format(view, i);
  return ` {${parts.join(",")}}`;
}

/** A TypeProto as the syntax writes it: `float[B,?,128]`, `float` (scalar), `float[]` (unknown rank), `seq(…)`. */
export function printType(t: TypeProto): string {
  const v = t.value;
  switch (v.case) {
    case "tensorType":
      return dtypeName(v.value.elemType) + printShape(v.value.shape?.dim);
    case "sparseTensorType":
      return `sparse_tensor(${dtypeName(v.value.elemType)}${printShape(v.value.shape?.dim)})`;
    case "sequenceType":
      return `seq(${v.value.elemType ? printType(v.value.elemType) : ""})`;
    case "optionalType":
      return `optional(${v.value.elemType ? printType(v.value.elemType) : ""})`;
    case "mapType":
      return `map(${dtypeName(v.value.keyType)}, ${v.value.valueType ? printType(v.value.valueType) : ""})`;
    case "opaqueType":
      return `opaque(${v.value.domain ? `${v.value.domain},` : ""}${v.value.name})`;
    default:
      return "";
  }
}

type Dims = NonNullable<Extract<TypeProto["value"], { case: "tensorType" }>["value"]["shape"]>["dim"];

function printShape(dims: Dims | undefined): string {
  if (!dims) return "[]";
  if (dims.length === 0) return "";
  const each = dims.map((d) => (d.value.case === "dimValue" ? String(d.value.value) : d.value.case === "dimParam" ? printId(d.value.value) : "?"));
  return `[${each.join(",")}]`;
}
