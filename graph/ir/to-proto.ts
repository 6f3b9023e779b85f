import { clone, create } from "@bufbuild/protobuf";
import {
  AttributeProto_AttributeType as AT,
  AttributeProtoSchema,
  FunctionProtoSchema,
  GraphProtoSchema,
  ModelProtoSchema,
  OperatorSetIdProtoSchema,
  StringStringEntryProtoSchema,
  TensorProtoSchema,
  TensorShapeProto_DimensionSchema,
  TensorShapeProtoSchema,
  TypeProto_TensorSchema,
  TypeProtoSchema,
  ValueInfoProtoSchema,
  type AttributeProto,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type OperatorSetIdProto,
  type TensorProto,
  type TypeProto,
  type ValueInfoProto,
} from "../onnx/generated/onnx_pb.ts";
import type { Graph } from "./graph.ts";
import type { Model, ModelFunction } from "./model.ts";
import type { Node } from "./node.ts";
import type { Tensor } from "./tensor.ts";
import type { ValueType } from "./types.ts";
import type { Value, ValueInfoRole } from "./value.ts";

/** A model as the writer needs it: the main graph's initializers are kept apart so their bytes can be streamed. */
export interface ModelOutParts {
  model: ModelProto;
  graph: GraphProto;
  initializers: Tensor[];
}

export function modelToParts(model: Model): ModelOutParts {
  const out = clone(ModelProtoSchema, model.extras);
  setScalar(out, "irVersion", BigInt(model.irVersion));
  out.opsetImport = opsetProtos(model.opsets, model.extras.opsetImport);
  out.functions = model.functions.map(functionToProto);
  return { model: out, graph: graphToProto(model.graph, false), initializers: [...model.graph.initializers.values()].map((v) => v.initializer!) };
}

/** The whole model as one ModelProto with every weight's bytes inline (for small models and tests). */
export function modelToProto(model: Model): ModelProto {
  const parts = modelToParts(model);
  parts.graph.initializer = parts.initializers.map(tensorToProto);
  parts.model.graph = parts.graph;
  return parts.model;
}

/** A TensorProto carrying the tensor's data: unchanged protos as they were, others with raw_data. */
export function tensorToProto(t: Tensor): TensorProto {
  if (t.dataInProto || t.external) return t.proto;
  const p = clone(TensorProtoSchema, t.proto);
  p.rawData = t.bytes();
  return p;
}

export function graphToProto(graph: Graph, withInitializers = true): GraphProto {
  const out = clone(GraphProtoSchema, graph.extras);
  setScalar(out, "name", graph.name);
  setScalar(out, "docString", graph.docString);
  out.metadataProps = entries(graph.metadata);
  out.input = graph.inputs.map((v) => valueInfoToProto(v, "input"));
  out.output = graph.outputs.map((v) => valueInfoToProto(v, "output"));
  out.node = graph.nodeArray().map(nodeToProto);
  out.valueInfo = [...graph.valueInfo].filter((v) => v.type || v.infos.valueInfo).map((v) => valueInfoToProto(v, "valueInfo"));
  if (withInitializers) out.initializer = [...graph.initializers.values()].map((v) => tensorToProto(v.initializer!));
  return out;
}

function functionToProto(fn: ModelFunction): ReturnType<typeof clone<typeof FunctionProtoSchema>> {
  const out = clone(FunctionProtoSchema, fn.extras);
  setScalar(out, "name", fn.name);
  setScalar(out, "domain", fn.domain);
  setScalar(out, "overload", fn.overload);
  out.input = fn.body.inputs.map((v) => v.name);
  out.output = fn.body.outputs.map((v) => v.name);
  out.attribute = [...fn.attributeNames];
  out.opsetImport = opsetProtos(fn.opsets, fn.extras.opsetImport);
  out.node = fn.body.nodeArray().map(nodeToProto);
  out.valueInfo = [...fn.body.valueInfo].map((v) => valueInfoToProto(v, "valueInfo"));
  return out;
}

/** The node's NodeProto: its `extras` with every modeled field written (in place: no clone per node). */
export function nodeToProto(node: Node): NodeProto {
  const out = node.extras;
  setScalar(out, "opType", node.op);
  setScalar(out, "domain", node.domain);
  setScalar(out, "name", node.name);
  setScalar(out, "overload", node.overload);
  setScalar(out, "docString", node.docString);
  out.input = node.inputs.map((v) => v?.name ?? "");
  out.output = Array.from(node.outputs, (v) => v?.name ?? "");
  out.attribute = [...node.attributes.values()].map((a) => attributeToProto(a.proto, a.graphs, a.tensor));
  out.metadataProps = entries(node.metadata);
  return out;
}

function attributeToProto(proto: AttributeProto, graphs: Graph[], tensor: Tensor | undefined): AttributeProto {
  if (graphs.length === 0 && !tensor) return proto;
  const out = clone(AttributeProtoSchema, proto);
  if (proto.type === AT.GRAPH) out.g = graphToProto(graphs[0]!);
  else if (proto.type === AT.GRAPHS) out.graphs = graphs.map((g) => graphToProto(g));
  if (tensor) out.t = tensorToProto(tensor);
  return out;
}

export function valueInfoToProto(v: Value, role: ValueInfoRole): ValueInfoProto {
  const info = v.infos[role];
  if (info && v.type === v.typeAtLoad) {
    if (info.name === v.name) return info;
    const renamed = clone(ValueInfoProtoSchema, info);
    renamed.name = v.name;
    return renamed;
  }
  const out = info ? clone(ValueInfoProtoSchema, info) : create(ValueInfoProtoSchema);
  out.name = v.name;
  out.type = v.type ? typeToProto(v.type) : undefined;
  return out;
}

export function typeToProto(t: ValueType): TypeProto {
  if (t.kind === "opaque") return t.proto;
  const tensor = create(TypeProto_TensorSchema, { elemType: t.dtype });
  if (t.shape) {
    tensor.shape = create(TensorShapeProtoSchema, {
      dim: t.shape.map((d) =>
        create(TensorShapeProto_DimensionSchema, {
          value: typeof d === "number" ? { case: "dimValue", value: BigInt(d) } : typeof d === "string" ? { case: "dimParam", value: d } : { case: undefined },
        }),
      ),
    });
  }
  return create(TypeProtoSchema, { value: { case: "tensorType", value: tensor } });
}

/** Opset imports in map order, reusing the entries read from the file where unchanged. */
function opsetProtos(opsets: Map<string, number>, original: OperatorSetIdProto[]): OperatorSetIdProto[] {
  return [...opsets].map(
    ([domain, version]) =>
      original.find((o) => o.domain === domain && Number(o.version) === version) ?? create(OperatorSetIdProtoSchema, { domain, version: BigInt(version) }),
  );
}

function entries(map: Map<string, string>) {
  return [...map].map(([key, value]) => create(StringStringEntryProtoSchema, { key, value }));
}

/** Assigns a scalar field only when its value changes, so an absent field stays absent. */
function setScalar<T extends object, K extends keyof T>(msg: T, key: K, value: T[K]): void {
  if (msg[key] !== value) msg[key] = value;
}
