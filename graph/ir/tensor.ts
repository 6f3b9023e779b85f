import { createHash } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { TensorProtoSchema, type TensorProto } from "../onnx/generated/onnx_pb.ts";
import type { ByteRange } from "../onnx/byte-source.ts";
import { DataType as DT, byteSize } from "./dtype.ts";

/** Where an external tensor's bytes were read from; saving keeps pointing there while unchanged. */
export interface ExternalOrigin {
  /** The `location` string as written in the model (relative to the model's folder). */
  location: string;
  /** The model folder's absolute path joined with `location`. */
  resolvedPath: string;
}

export type TypedArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

const SAMPLED_HASH_ABOVE = 64 << 20;

/**
 * A constant tensor (an initializer or an attribute value). Its bytes are either a range of the
 * file it came from, not read until asked for, or an array a pass produced. `proto` keeps every
 * field of the original TensorProto except the data, so a round trip loses nothing.
 */
export class Tensor {
  readonly proto: TensorProto;
  private raw: ByteRange | Uint8Array | undefined;
  readonly external: ExternalOrigin | undefined;

  constructor(proto: TensorProto, raw?: ByteRange | Uint8Array, external?: ExternalOrigin) {
    this.proto = proto;
    this.raw = raw;
    this.external = external;
  }

  static fromBytes(name: string, dtype: number, dims: readonly number[], bytes: Uint8Array): Tensor {
    const proto = create(TensorProtoSchema, { name, dataType: dtype, dims: dims.map(BigInt) });
    return new Tensor(proto, bytes);
  }

  static fromArray(name: string, dtype: number, dims: readonly number[], values: TypedArray): Tensor {
    return Tensor.fromBytes(name, dtype, dims, new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  }

  get name(): string {
    return this.proto.name;
  }

  get dtype(): number {
    return this.proto.dataType;
  }

  get dims(): number[] {
    return this.proto.dims.map(Number);
  }

  get elementCount(): number {
    return this.proto.dims.reduce((n, d) => n * Number(d), 1);
  }

  get byteLength(): number {
    if (this.raw instanceof Uint8Array) return this.raw.byteLength;
    if (this.raw) return this.raw.length;
    return byteSize(this.dtype, this.elementCount);
  }

  /** The unread byte range this tensor's data still points at, if any. */
  get range(): ByteRange | undefined {
    return this.raw instanceof Uint8Array ? undefined : this.raw;
  }

  /** Bytes a pass produced (not read from a file). */
  get ownBytes(): Uint8Array | undefined {
    return this.raw instanceof Uint8Array ? this.raw : undefined;
  }

  /** True when the data lives in the proto's own fields (typed fields or small raw_data). */
  get dataInProto(): boolean {
    return this.raw === undefined;
  }

  /** The little-endian bytes of the data, reading them from their file if needed. */
  bytes(): Uint8Array {
    if (this.raw instanceof Uint8Array) return this.raw;
    if (this.raw) return this.raw.source.read(this.raw.offset, this.raw.length);
    return protoFieldBytes(this.proto);
  }

  /** The values as a typed array of the element type (float16/bfloat16 as raw Uint16Array). */
  toArray(): TypedArray {
    const bytes = this.bytes();
    const copy = new Uint8Array(bytes); // aligned copy; callers use this for small constants
    const ctor = ARRAY_TYPES[this.dtype];
    if (!ctor) throw new TypeError(`no typed array for ONNX dtype ${this.dtype}`);
    return new ctor(copy.buffer, 0, copy.byteLength / ctor.BYTES_PER_ELEMENT);
  }

  /** A short content hash for dumps; very large tensors hash their length plus first and last MiB. */
  contentHash(): string {
    const h = createHash("sha256");
    const n = this.byteLength;
    if (n > SAMPLED_HASH_ABOVE && this.raw && !(this.raw instanceof Uint8Array)) {
      const { source, offset } = this.raw;
      h.update(`sampled:${n}:`);
      h.update(source.read(offset, 1 << 20));
      h.update(source.read(offset + n - (1 << 20), 1 << 20));
    } else if (this.dtype === DT.STRING) {
      for (const s of this.proto.stringData) h.update(s);
    } else {
      h.update(this.bytes());
    }
    return h.digest("hex").slice(0, 12);
  }
}

type ArrayCtor = { new (buffer: ArrayBufferLike, offset: number, length: number): TypedArray; BYTES_PER_ELEMENT: number };

const ARRAY_TYPES: Partial<Record<number, ArrayCtor>> = {
  [DT.FLOAT]: Float32Array,
  [DT.DOUBLE]: Float64Array,
  [DT.INT8]: Int8Array,
  [DT.UINT8]: Uint8Array,
  [DT.BOOL]: Uint8Array,
  [DT.INT16]: Int16Array,
  [DT.UINT16]: Uint16Array,
  [DT.FLOAT16]: Uint16Array,
  [DT.BFLOAT16]: Uint16Array,
  [DT.INT32]: Int32Array,
  [DT.UINT32]: Uint32Array,
  [DT.INT64]: BigInt64Array,
  [DT.UINT64]: BigUint64Array,
};

/** Converts the typed `*_data` fields of a TensorProto into the raw little-endian layout. */
function protoFieldBytes(p: TensorProto): Uint8Array {
  if (p.rawData.byteLength > 0) return p.rawData;
  const view = (a: TypedArray) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  switch (p.dataType) {
    case DT.FLOAT:
    case DT.COMPLEX64:
      return view(Float32Array.from(p.floatData));
    case DT.DOUBLE:
    case DT.COMPLEX128:
      return view(Float64Array.from(p.doubleData));
    case DT.INT64:
      return view(BigInt64Array.from(p.int64Data));
    case DT.UINT64:
      return view(BigUint64Array.from(p.uint64Data));
    case DT.UINT32:
      return view(Uint32Array.from(p.uint64Data, Number));
    case DT.INT32:
      return view(Int32Array.from(p.int32Data));
    case DT.INT16:
      return view(Int16Array.from(p.int32Data));
    case DT.UINT16:
    case DT.FLOAT16:
    case DT.BFLOAT16:
      return view(Uint16Array.from(p.int32Data));
    case DT.INT8:
      return view(Int8Array.from(p.int32Data));
    default:
      // uint8, bool, float8 and the packed 4/2-bit types store one byte per int32_data entry.
      return Uint8Array.from(p.int32Data);
  }
}
