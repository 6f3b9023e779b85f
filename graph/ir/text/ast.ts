/**
 * The parse tree of the text form, close to the syntax: names and numbers are still tokens, so
 * that building the IR (to-ir.ts) can point every error at its line and column.
 */
import type { IToken } from "chevrotain";

export interface ModelAst {
  header: HeaderEntryAst[];
  graph: GraphAst;
  functions: FunctionAst[];
}

export interface HeaderEntryAst {
  key: IToken;
  /** A number or string token, or a list of `"key" : value` pairs (opset_import, metadata_props). */
  value: IToken | [IToken, IToken][];
}

export interface GraphAst {
  name: IToken;
  inputs: ValueInfoAst[];
  outputs: ValueInfoAst[];
  /** The `<…>` list: initializers (with data) and value_info entries (without). */
  inner: ValueInfoAst[];
  nodes: NodeAst[];
}

export type TypeAst =
  | { kind: "tensor"; elem: IToken; dims: IToken[] | undefined }
  | { kind: "sparse_tensor"; elem: IToken; dims: IToken[] | undefined }
  | { kind: "seq" | "optional"; elem: TypeAst }
  | { kind: "map"; key: IToken; value: TypeAst }
  | { kind: "opaque"; parts: IToken[] };

export type ConstantDataAst =
  | { kind: "values"; open: IToken; values: IToken[] }
  | { kind: "external"; open: IToken; entries: [IToken, IToken][] }
  | { kind: "hash"; token: IToken }
  | { kind: "elided"; token: IToken };

export interface ValueInfoAst {
  type: TypeAst | undefined;
  name: IToken;
  data: ConstantDataAst | undefined;
}

export interface TensorAst {
  type: TypeAst;
  name: IToken | undefined;
  data: ConstantDataAst;
}

export type SingleAttrValueAst =
  | { kind: "token"; token: IToken }
  | { kind: "tensor"; tensor: TensorAst }
  | { kind: "graph"; graph: GraphAst }
  | { kind: "type"; type: TypeAst };

export interface AttributeAst {
  name: IToken;
  type: IToken | undefined;
  value: { kind: "ref"; name: IToken } | { kind: "list"; open: IToken; items: SingleAttrValueAst[] } | SingleAttrValueAst;
}

export interface NodeAst {
  label: IToken | undefined;
  outputs: IToken[];
  /** The dotted operator name: domain parts, then the operator. */
  op: IToken[];
  overload: IToken | undefined;
  attributes: AttributeAst[];
  inputs: IToken[];
}

export interface FunctionAst {
  header: HeaderEntryAst[];
  name: IToken;
  /** Attribute names, or attributes with a default value. */
  attributes: (IToken | AttributeAst)[];
  inputs: ValueInfoAst[];
  outputs: ValueInfoAst[];
  valueInfos: ValueInfoAst[];
  nodes: NodeAst[];
}
