import { create } from "@bufbuild/protobuf";
import { PipecError } from "../errors.ts";
import type { ByteRange } from "../onnx/byte-source.ts";
import { ExternalDataResolver, isExternal } from "../onnx/external-data.ts";
import {
  AttributeProto_AttributeType as AT,
  GraphProtoSchema,
  ValueInfoProtoSchema,
  type FunctionProto,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type TypeProto,
  type ValueInfoProto,
} from "../onnx/generated/onnx_pb.ts";
import { Attribute } from "./attribute.ts";
import { byteSize, DataType, dtypeName } from "./dtype.ts";
import { Graph } from "./graph.ts";
import { Model, ModelFunction } from "./model.ts";
import { Node } from "./node.ts";
import { Tensor } from "./tensor.ts";
import type { Dim, ValueType } from "./types.ts";
import { Value, type ValueInfoRole } from "./value.ts";

/** An initializer as the loader found it: the proto without its bulk bytes, and where those are. */
export interface InitializerSource {
  proto: TensorProto;
  raw?: ByteRange;
}

export interface ModelParts {
  /** The ModelProto without its graph. */
  model: ModelProto;
  /** The main GraphProto without its initializers. */
  graph: GraphProto;
  initializers: InitializerSource[];
}

/**
 * Builds the IR of a model from its decoded parts. It takes ownership of the protos: each IR
 * object keeps the proto it came from as `extras` (with the fields the IR models cleared), which
 * is what lets a round trip write back every field the IR does not know.
 */
export function modelFromParts(parts: ModelParts, baseDir: string | undefined): Model {
  const ctx = new Context(new ExternalDataResolver(baseDir));
  const extras = parts.model;
  const functions = extras.functions;
  extras.functions = [];
  extras.graph = undefined;
  const opsets = new Map(extras.opsetImport.map((o) => [o.domain, Number(o.version)]));
  const model = new Model({ irVersion: Number(extras.irVersion), opsets, extras });
  model.baseDir = baseDir;
  ctx.fillGraph(model.graph, parts.graph, parts.initializers);
  for (const fp of functions) model.functions.push(ctx.functionFromProto(fp));
  return model;
}

class Context {
  constructor(private readonly external: ExternalDataResolver) {}

  tensor(proto: TensorProto, raw?: ByteRange): Tensor {
    if (isExternal(proto)) {
      const { range, location, path } = this.external.range(proto);
      checkDataLength(proto, range.length, `external data '${location}'`);
      return new Tensor(proto, range, { location, resolvedPath: path });
    }
    if (raw) checkDataLength(proto, raw.length, "raw_data");
    else if (proto.rawData.byteLength > 0) checkDataLength(proto, proto.rawData.byteLength, "raw_data");
    else checkTypedDataLength(proto);
    return new Tensor(proto, raw);
  }

  fillGraph(graph: Graph, proto: GraphProto, initializers: InitializerSource[] = proto.initializer.map((t) => ({ proto: t }))): void {
    // The lists are read below; the proto itself becomes the graph's extras.
    const gp = { name: proto.name, docString: proto.docString, node: proto.node, input: proto.input, output: proto.output, valueInfo: proto.valueInfo, metadataProps: proto.metadataProps };
    proto.node = [];
    proto.input = [];
    proto.output = [];
    proto.initializer = [];
    proto.valueInfo = [];
    proto.metadataProps = [];
    graph.extras = proto;
    graph.name = gp.name;
    graph.docString = gp.docString;
    for (const m of gp.metadataProps) graph.metadata.set(m.key, m.value);

    const where = `graph '${gp.name}'`;
    for (const info of gp.input) {
      const v = graph.defineValue(this.unique(graph, info.name, where));
      setInfo(v, "input", info);
      graph.inputs.push(v);
    }
    for (const { proto, raw } of initializers) {
      const existing = graph.lookup(proto.name);
      const v = existing?.graph === graph && existing.isGraphInput && !existing.initializer ? existing : graph.defineValue(this.unique(graph, proto.name, where));
      v.initializer = this.tensor(proto, raw);
      if (!v.type) v.type = { kind: "tensor", dtype: proto.dataType, shape: proto.dims.map(Number) };
      graph.initializers.set(v.name, v);
    }

    // Outputs of every node first, so that inputs may name values defined later: a graph out of
    // topological order (or with a cycle) still loads, and the verifier reports it.
    const nodes: [Node, NodeProto][] = [];
    for (const np of gp.node) {
      // The loader owns the decoded protos: a node keeps its NodeProto as `extras` (the fields the
      // IR models are cleared once read below) instead of paying for a reflective clone.
      const node = new Node(np.opType, np.domain, np);
      node.name = np.name;
      node.overload = np.overload;
      node.docString = np.docString;
      for (const m of np.metadataProps) node.metadata.set(m.key, m.value);
      node.outputs.length = np.output.length;
      np.output.forEach((name, i) => {
        if (name === "") return;
        graph.attachOutput(node, graph.defineValue(this.unique(graph, name, `node '${np.name || np.opType}'`)), i);
      });
      graph.append(node);
      nodes.push([node, np]);
    }
    for (const info of gp.valueInfo) {
      // An entry for a name nothing defines is kept as a detached value so the file round-trips.
      const v = graph.lookup(info.name) ?? new Value(graph, info.name);
      setInfo(v, "valueInfo", info);
      graph.valueInfo.add(v);
    }
    for (const [node, np] of nodes) {
      np.input.forEach((name, i) => node.setInput(i, name === "" ? undefined : this.resolve(graph, name, np)));
      for (const ap of np.attribute) node.setAttribute(this.attribute(graph, ap));
      // Scalar fields stay: the writer assigns them only when the IR's value differs, so a field
      // that was absent stays absent and one that was present (even empty) stays present.
      np.input = [];
      np.output = [];
      np.attribute = [];
      np.metadataProps = [];
    }
    for (const info of gp.output) {
      const v = graph.lookup(info.name);
      if (!v) throw new PipecError("invalid-model", `${where} lists output '${info.name}', which nothing defines`);
      setInfo(v, "output", info);
      graph.outputs.push(v);
    }
  }

  functionFromProto(proto: FunctionProto): ModelFunction {
    const fp = { name: proto.name, domain: proto.domain, overload: proto.overload, attribute: proto.attribute, opsetImport: proto.opsetImport, node: proto.node, input: proto.input, output: proto.output, valueInfo: proto.valueInfo };
    proto.node = [];
    proto.input = [];
    proto.output = [];
    proto.valueInfo = [];
    proto.attribute = [];
    const fn = new ModelFunction(fp.name, fp.domain, {
      overload: fp.overload,
      attributeNames: [...fp.attribute],
      opsets: new Map(fp.opsetImport.map((o) => [o.domain, Number(o.version)])),
      extras: proto,
    });
    const info = (name: string) => create(ValueInfoProtoSchema, { name });
    const body = create(GraphProtoSchema, { name: fp.name, node: fp.node, input: fp.input.map(info), output: fp.output.map(info), valueInfo: fp.valueInfo });
    this.fillGraph(fn.body, body);
    return fn;
  }

  private attribute(graph: Graph, ap: AttributeProto): Attribute {
    const proto = ap;
    // In a function body an attribute may stand for the caller's (ref_attr_name) and hold no value.
    if (!ap.refAttrName && ((ap.type === AT.GRAPH && !ap.g) || (ap.type === AT.TENSOR && !ap.t))) {
      throw new PipecError("invalid-model", `attribute '${ap.name}' is of type ${AT[ap.type]} but holds no ${ap.type === AT.GRAPH ? "graph" : "tensor"}`);
    }
    const subgraphs = ap.type === AT.GRAPH && ap.g ? [ap.g] : ap.type === AT.GRAPHS ? ap.graphs : [];
    const t = ap.t;
    proto.g = undefined;
    proto.graphs = [];
    proto.t = undefined;
    const graphs = subgraphs.map((gp) => {
      const sub = new Graph(gp.name, { parent: graph });
      this.fillGraph(sub, gp);
      return sub;
    });
    const tensor = ap.type === AT.TENSOR && t ? this.tensor(t) : undefined;
    if (ap.type !== AT.TENSOR && t) proto.t = t; // an unusual but legal extra field: keep it
    return new Attribute(proto, graphs, tensor);
  }

  private resolve(graph: Graph, name: string, np: NodeProto) {
    const v = graph.lookup(name);
    if (!v) {
      throw new PipecError("invalid-model", `node '${np.name || np.opType}' (${np.opType}) reads '${name}', which no node, graph input or initializer defines`);
    }
    return v;
  }

  private unique(graph: Graph, name: string, where: string): string {
    if (graph.names.has(name) && graph.lookup(name)) {
      throw new PipecError("invalid-model", `${where} defines '${name}' a second time (values must be assigned once)`);
    }
    return name;
  }
}

/** A fixed-size tensor's data must have exactly the bytes its dtype and dims call for. */
function checkDataLength(proto: TensorProto, length: number, where: string): void {
  if (proto.dataType === DataType.STRING || proto.dataType === DataType.UNDEFINED) return;
  const expected = byteSize(proto.dataType, proto.dims.reduce((n, d) => n * Number(d), 1));
  if (length !== expected) {
    throw new PipecError("invalid-model", `tensor '${proto.name}' needs ${expected} bytes (${dtypeName(proto.dataType)}[${proto.dims.join(",")}]) but its ${where} holds ${length}`);
  }
}

/** Element types whose typed-field data (float_data, int32_data, ...) holds one entry per element. */
const ONE_ENTRY_PER_ELEMENT = new Set<number>([DataType.FLOAT, DataType.DOUBLE, DataType.INT32, DataType.INT64, DataType.UINT64, DataType.UINT32, DataType.INT8, DataType.UINT8, DataType.INT16, DataType.UINT16, DataType.BOOL, DataType.FLOAT16, DataType.BFLOAT16]);

/** Data in the typed fields must have one entry per element, as raw_data must have the bytes. */
function checkTypedDataLength(proto: TensorProto): void {
  if (!ONE_ENTRY_PER_ELEMENT.has(proto.dataType)) return;
  const entries = proto.floatData.length || proto.int32Data.length || proto.int64Data.length || proto.doubleData.length || proto.uint64Data.length;
  const elements = proto.dims.reduce((n, d) => n * Number(d), 1);
  if (entries !== elements) {
    throw new PipecError("invalid-model", `tensor '${proto.name}' has ${elements} elements (${dtypeName(proto.dataType)}[${proto.dims.join(",")}]) but its data holds ${entries}`);
  }
}

type AttributeProto = NodeProto["attribute"][number];


/** Records the ValueInfoProto `v` was listed with as `role`, taking its type when it says more. */
export function setInfo(v: Value, role: ValueInfoRole, info: ValueInfoProto): void {
  v.infos[role] = info;
  const type = info.type ? typeFromProto(info.type) : undefined;
  if (knownDims(type) > knownDims(v.type)) v.type = type;
  v.typeAtLoad = v.type;
}

/** How much a type says: -1 nothing, 0 dtype only, then 1 + the number of known dims. */
function knownDims(t: ValueType | undefined): number {
  if (!t) return -1;
  if (t.kind !== "tensor" || !t.shape) return 0;
  return 1 + t.shape.filter((d) => d !== undefined).length;
}

export function typeFromProto(tp: TypeProto): ValueType {
  if (tp.value.case === "tensorType") {
    const t = tp.value.value;
    const shape: Dim[] | undefined = t.shape
      ? t.shape.dim.map((d) => (d.value.case === "dimValue" ? Number(d.value.value) : d.value.case === "dimParam" ? d.value.value : undefined))
      : undefined;
    return { kind: "tensor", dtype: t.elemType, shape };
  }
  return { kind: "opaque", proto: tp };
}
