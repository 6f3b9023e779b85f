import { create, toBinary } from "@bufbuild/protobuf";
import { Builder } from "../../graph/ir/builder.ts";
import { DataType } from "../../graph/ir/dtype.ts";
import { Graph } from "../../graph/ir/graph.ts";
import { Model } from "../../graph/ir/model.ts";
import { typeToProto } from "../../graph/ir/to-proto.ts";
import { tensorType } from "../../graph/ir/types.ts";
import {
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  ValueInfoProtoSchema,
  type TensorProto,
} from "../../graph/onnx/generated/onnx_pb.ts";

/** `[name, op, inputs, outputs]` */
export type NodeSpec = [name: string, op: string, inputs: string[], outputs: string[]];

/**
 * A float[2] model written straight as protobuf, for graphs the IR's builder would not make:
 * nodes out of order, cycles, reads of undefined names, hostile external data references.
 */
export function handmadeModel(nodes: NodeSpec[], opts: { inputs?: string[]; outputs?: string[]; initializers?: TensorProto[] } = {}): Uint8Array {
  const info = (name: string) => create(ValueInfoProtoSchema, { name, type: typeToProto(tensorType(DataType.FLOAT, [2])) });
  const graph = create(GraphProtoSchema, {
    name: "handmade",
    node: nodes.map(([name, opType, input, output]) => create(NodeProtoSchema, { name, opType, input, output })),
    input: (opts.inputs ?? ["x"]).map(info),
    output: (opts.outputs ?? ["y"]).map(info),
    initializer: opts.initializers ?? [],
  });
  const model = create(ModelProtoSchema, {
    irVersion: 10n,
    producerName: "pipec-test",
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: "", version: 17n })],
    graph,
  });
  return toBinary(ModelProtoSchema, model);
}

/** y = Neg(Relu(Abs(x))), with the nodes listed consumer first. */
export const reversedChain: NodeSpec[] = [
  ["neg", "Neg", ["b"], ["y"]],
  ["relu", "Relu", ["a"], ["b"]],
  ["abs", "Abs", ["x"], ["a"]],
];

/** a = Add(x, c); c = Relu(a): a cycle through 'add' and 'relu'. */
export const cycle: NodeSpec[] = [
  ["add", "Add", ["x", "c"], ["a"]],
  ["relu", "Relu", ["a"], ["c"]],
  ["out", "Identity", ["a"], ["y"]],
];

/** x -> MatMul(w) -> If(cond: Relu, else: Neg) + bias: weights above 1 KiB, a subgraph reading the outer scope. */
export function matmulIfModel(): Model {
  const model = new Model({ opsets: { "": 17 } });
  const g = model.graph;
  const b = new Builder(g);
  const x = b.input("x", DataType.FLOAT, ["B", 16]);
  const h = b.op.MatMul(x, b.float32(Array.from({ length: 256 }, (_, i) => Math.sin(i)), [16, 16]));
  const branch = (name: string, op: string) => {
    const sub = new Graph(name, { parent: g });
    const sb = new Builder(sub);
    sb.output(sb.op[op]!(h), undefined, tensorType(DataType.FLOAT, ["B", 16]));
    return sub;
  };
  const chosen = g.addNode("If", [b.input("cond", DataType.BOOL, [])], { attributes: { then_branch: branch("relu", "Relu"), else_branch: branch("neg", "Neg") } });
  b.output(b.op.Add(chosen.output(), b.float32(Array.from({ length: 16 }, (_, i) => i / 16))), "y", tensorType(DataType.FLOAT, ["B", 16]));
  return model;
}
