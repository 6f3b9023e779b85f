import { closeSync, ftruncateSync, mkdirSync, openSync } from "node:fs";
import { basename, dirname } from "node:path";
import { create } from "@bufbuild/protobuf";
import { Builder, DataType, Model, Tensor } from "../graph/ir/index.ts";
import { StringStringEntryProtoSchema, TensorProto_DataLocation, TensorProtoSchema } from "../graph/onnx/generated/onnx_pb.ts";
import { FileSource } from "../graph/onnx/byte-source.ts";
import { saveModel } from "../graph/onnx/index.ts";

export interface SyntheticSpec {
  /** Total weight bytes, spread over `weights` float32 tensors. */
  weightBytes: number;
  weights?: number;
  /** Approximate node count: a chain of elementwise ops with a dead branch every 10 nodes for DCE. */
  nodes: number;
  external: boolean;
}

/**
 * Writes a model whose size and node count are chosen independently, to measure that load, save
 * and passes scale with nodes and not with weight bytes. Weights are zeros; external data is a
 * sparse file, so even multi-GiB models cost no disk writes. Each weight is read by a Gather so
 * onnxruntime only touches a row of it.
 */
export function writeSyntheticModel(path: string, spec: SyntheticSpec): void {
  const m = new Model({ opsets: { "": 18 } });
  const b = new Builder(m.graph);
  const ids = b.input("ids", DataType.INT64, [1]);
  let x = b.input("x", DataType.FLOAT, [1, 256]);
  const count = spec.weights ?? Math.max(1, Math.min(64, Math.ceil(spec.weightBytes / (256 << 20))));
  const rows = Math.max(1, Math.floor(spec.weightBytes / count / (256 * 4)));
  mkdirSync(dirname(path), { recursive: true });
  const location = `${basename(path)}.data`;
  let zeros: FileSource | undefined;
  if (spec.external) {
    const fd = openSync(`${path}.data`, "w");
    ftruncateSync(fd, count * rows * 1024);
    closeSync(fd);
    zeros = new FileSource(`${path}.data`);
  }
  for (let i = 0; i < count; i++) {
    const tensor = zeros ? externalZeros(`w${i}`, rows, zeros, location, i * rows * 1024) : Tensor.fromBytes(`w${i}`, DataType.FLOAT, [rows, 256], new Uint8Array(rows * 1024));
    const w = b.graph.addInitializer(tensor);
    x = b.op.Add(x, b.op.Gather(w, ids, { axis: 0 }));
  }
  const one = b.float32(1);
  for (let i = 0; i < spec.nodes - 2 * count; i++) {
    if (i % 10 === 9) b.op.Mul(x, one); // dead: nothing reads it
    else x = b.op.Add(x, one);
  }
  b.output(b.typed(x, DataType.FLOAT, [1, 256]), "y");
  saveModel(m, path);
}

/** A zero-filled [rows, 256] float32 weight at `offset` of the sparse data file next to the model. */
function externalZeros(name: string, rows: number, source: FileSource, location: string, offset: number): Tensor {
  const proto = create(TensorProtoSchema, { name, dataType: DataType.FLOAT, dims: [BigInt(rows), 256n] });
  proto.dataLocation = TensorProto_DataLocation.EXTERNAL;
  proto.externalData = [
    ["location", location],
    ["offset", String(offset)],
    ["length", String(rows * 1024)],
  ].map(([key, value]) => create(StringStringEntryProtoSchema, { key, value }));
  return new Tensor(proto, { source, offset, length: rows * 1024 }, { location, resolvedPath: source.path });
}
