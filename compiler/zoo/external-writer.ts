import { closeSync, openSync } from "node:fs";
import { basename, resolve } from "node:path";
import { create } from "@bufbuild/protobuf";
import { FileSource, writeAll, type ByteSource } from "../onnx/byte-source.ts";
import { StringStringEntryProtoSchema, TensorProto_DataLocation, TensorProtoSchema } from "../onnx/generated/onnx_pb.ts";
import { DataType } from "../ir/dtype.ts";
import { Tensor } from "../ir/tensor.ts";
import type { TensorSink } from "./weights.ts";

const ALIGN = 4096;

/**
 * Writes weights to an external data file as they are generated and hands back tensors that
 * reference their range of it, so a large model is never held in memory whole. The tensors carry
 * their external origin, so `saveModel` (weights: "preserve") keeps pointing at this file instead
 * of copying it: the data file must lie in the folder the model is saved to.
 */
export class ExternalDataWriter {
  private readonly fd: number;
  private readonly location: string;
  private size = 0;
  private reader: FileSource | undefined;

  constructor(readonly path: string) {
    this.path = resolve(path);
    this.location = basename(this.path);
    this.fd = openSync(this.path, "w");
  }

  readonly sink: TensorSink = (name, dims, values) => {
    const offset = Math.ceil(this.size / ALIGN) * ALIGN;
    if (offset > this.size) writeAll(this.fd, new Uint8Array(offset - this.size));
    const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    writeAll(this.fd, bytes);
    this.size = offset + bytes.byteLength;
    const proto = create(TensorProtoSchema, {
      name,
      dataType: DataType.FLOAT,
      dims: dims.map(BigInt),
      dataLocation: TensorProto_DataLocation.EXTERNAL,
      externalData: [
        ["location", this.location],
        ["offset", String(offset)],
        ["length", String(bytes.byteLength)],
      ].map(([key, value]) => create(StringStringEntryProtoSchema, { key, value })),
    });
    const range = { source: this.lazyReader(), offset, length: bytes.byteLength };
    return new Tensor(proto, range, { location: this.location, resolvedPath: this.path });
  };

  /** Finishes the file; tensors handed out stay readable. */
  close(): void {
    closeSync(this.fd);
  }

  /** Reads go through a source opened on first read, after the bytes were written. */
  private lazyReader(): ByteSource {
    const self = this;
    return {
      path: this.path,
      get size() {
        return self.size;
      },
      read: (offset, length) => self.openReader().read(offset, length),
      copyTo: (fd, offset, length) => self.openReader().copyTo(fd, offset, length),
    };
  }

  private openReader(): FileSource {
    this.reader ??= new FileSource(this.path);
    return this.reader;
  }
}
