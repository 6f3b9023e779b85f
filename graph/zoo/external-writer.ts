import { closeSync, openSync } from "node:fs";
import { basename, resolve } from "node:path";
import { create } from "@bufbuild/protobuf";
import { FileSource, writeAll, type ByteSource } from "../onnx/byte-source.ts";
import { StringStringEntryProtoSchema, TensorProto_DataLocation, TensorProtoSchema } from "../onnx/generated/onnx_pb.ts";
import { DataType } from "../ir/dtype.ts";
import type { Model } from "../ir/model.ts";
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
  readonly path: string;
  private readonly location: string;
  private fd: number | undefined;
  private size = 0;
  private reader: FileSource | undefined;

  constructor(path: string) {
    this.path = resolve(path);
    this.location = basename(this.path);
    this.fd = openSync(this.path, "w");
  }

  readonly sink: TensorSink = (name, dims, values) =>
    this.write(name, DataType.FLOAT, dims, new Uint8Array(values.buffer, values.byteOffset, values.byteLength));

  /** Appends `bytes` (aligned) and returns a tensor referencing them. */
  write(name: string, dtype: number, dims: readonly number[], bytes: Uint8Array): Tensor {
    if (this.fd === undefined) throw new Error(`${this.path} is already closed`);
    const offset = Math.ceil(this.size / ALIGN) * ALIGN;
    if (offset > this.size) writeAll(this.fd, new Uint8Array(offset - this.size));
    writeAll(this.fd, bytes);
    this.size = offset + bytes.byteLength;
    const proto = create(TensorProtoSchema, {
      name,
      dataType: dtype,
      dims: dims.map(BigInt),
      dataLocation: TensorProto_DataLocation.EXTERNAL,
      externalData: [
        ["location", this.location],
        ["offset", String(offset)],
        ["length", String(bytes.byteLength)],
      ].map(([key, value]) => create(StringStringEntryProtoSchema, { key, value })),
    });
    const range = { source: this.source, offset, length: bytes.byteLength };
    return new Tensor(proto, range, { location: this.location, resolvedPath: this.path });
  }

  /**
   * Moves the model's other large in-memory initializers (rotary tables, ...) into this file
   * too: saving with `preserve` would otherwise start a second data file for them.
   */
  adoptInline(model: Model, minBytes = 1024): void {
    for (const v of model.graph.initializers.values()) {
      const t = v.initializer!;
      if (t.external || !t.ownBytes || t.byteLength < minBytes) continue;
      v.initializer = this.write(t.name, t.dtype, t.dims, t.ownBytes);
    }
  }

  /** Finishes the file; tensors handed out stay readable. */
  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  /** Reads go through a source opened on first read, after the bytes were written. */
  private readonly source: ByteSource = this.lazySource();

  private lazySource(): ByteSource {
    const self = this;
    return {
      get path() {
        return self.path;
      },
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
