/** The graph IR: the public surface other layers import. */
export { Attribute, AttributeType, float, makeAttribute, type AttributeValue } from "./attribute.ts";
export { Builder, type Attrs, type BuilderOptions, type OpCalls } from "./builder.ts";
export { DataType, byteSize, dtypeFromName, dtypeName, isFloat } from "./dtype.ts";
export { Graph, type AttrInput, type NodeOptions } from "./graph.ts";
export { Model, ModelFunction } from "./model.ts";
export { NameTable } from "./names.ts";
export { Node, PROVENANCE_KEY } from "./node.ts";
export { Tensor, type ExternalOrigin, type TypedArray } from "./tensor.ts";
export { modelToProto } from "./to-proto.ts";
export { sameType, tensorType, type Dim, type OpaqueType, type TensorType, type ValueType } from "./types.ts";
export { Value, type Use, type ValueInfoRole } from "./value.ts";
