import { create } from "@bufbuild/protobuf";
import { FunctionProtoSchema, ModelProtoSchema, type FunctionProto, type ModelProto } from "../onnx/generated/onnx_pb.ts";
import { Graph } from "./graph.ts";
import { NameTable } from "./names.ts";

/** A model-local function: a named body graph callable as `domain::name` by nodes. */
export class ModelFunction {
  name: string;
  domain: string;
  overload: string;
  readonly attributeNames: string[];
  readonly body: Graph;
  readonly opsets: Map<string, number>;
  /** Fields of the FunctionProto the IR does not model (attribute defaults, doc, metadata). */
  extras: FunctionProto;

  constructor(name: string, domain: string, opts: { overload?: string; attributeNames?: string[]; opsets?: Map<string, number>; extras?: FunctionProto } = {}) {
    this.name = name;
    this.domain = domain;
    this.overload = opts.overload ?? "";
    this.attributeNames = opts.attributeNames ?? [];
    this.opsets = opts.opsets ?? new Map();
    this.extras = opts.extras ?? create(FunctionProtoSchema);
    this.body = new Graph(name, { names: new NameTable() });
  }
}

/**
 * A model: its main graph, the operator sets it imports, model-local functions and the
 * metadata of the ModelProto. `extras` carries every ModelProto field the IR does not model.
 */
export class Model {
  irVersion: number;
  readonly opsets: Map<string, number>;
  readonly graph: Graph;
  readonly functions: ModelFunction[] = [];
  extras: ModelProto;
  /** Folder the model was loaded from; external data locations are relative to it. */
  baseDir: string | undefined;

  constructor(opts: { irVersion?: number; opsets?: Record<string, number> | Map<string, number>; graph?: Graph; extras?: ModelProto } = {}) {
    this.irVersion = opts.irVersion ?? 10;
    this.opsets = opts.opsets instanceof Map ? opts.opsets : new Map(Object.entries(opts.opsets ?? { "": 21 }));
    this.graph = opts.graph ?? new Graph("main");
    this.extras = opts.extras ?? create(ModelProtoSchema, { producerName: "pipec" });
  }

  /** The imported version of `domain` ("" and "ai.onnx" are the same domain). */
  opset(domain = ""): number | undefined {
    return this.opsets.get(domain) ?? (domain === "" ? this.opsets.get("ai.onnx") : domain === "ai.onnx" ? this.opsets.get("") : undefined);
  }

  /** Imports `domain` at `version` unless the model already imports it. */
  requireOpset(domain: string, version: number): void {
    if (this.opset(domain) === undefined) this.opsets.set(domain, version);
  }

  findFunction(domain: string, name: string, overload = ""): ModelFunction | undefined {
    return this.functions.find((f) => f.domain === domain && f.name === name && f.overload === overload);
  }

  get metadataProps(): ModelProto["metadataProps"] {
    return this.extras.metadataProps;
  }
}
