import { closeSync, fstatSync, openSync, readSync, writeSync } from "node:fs";

/**
 * Random access to the bytes of a file or a buffer. Weights are referenced as ranges of a source
 * and read only when something asks for their bytes.
 */
export interface ByteSource {
  readonly path: string | undefined;
  readonly size: number;
  /** The bytes [offset, offset+length). A memory source returns a view, a file source a fresh buffer. */
  read(offset: number, length: number): Uint8Array;
  /** Writes the bytes [offset, offset+length) to an open file without holding them all in memory. */
  copyTo(fd: number, offset: number, length: number): void;
}

/** Writes all of `bytes` to `fd` (writeSync may write less than asked). */
export function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.byteLength) done += writeSync(fd, bytes, done, bytes.byteLength - done);
}

const COPY_CHUNK = 8 << 20;

export class MemorySource implements ByteSource {
  readonly path: string | undefined;
  readonly size: number;
  private readonly bytes: Uint8Array;

  constructor(bytes: Uint8Array, path?: string) {
    this.bytes = bytes;
    this.path = path;
    this.size = bytes.byteLength;
  }

  read(offset: number, length: number): Uint8Array {
    return this.bytes.subarray(offset, offset + length);
  }

  copyTo(fd: number, offset: number, length: number): void {
    writeAll(fd, this.read(offset, length));
  }
}

/** A file kept open for positional reads; closed when the process exits. */
export class FileSource implements ByteSource {
  readonly path: string;
  readonly size: number;
  private readonly fd: number;

  constructor(path: string) {
    this.path = path;
    this.fd = openSync(path, "r");
    this.size = fstatSync(this.fd).size;
  }

  read(offset: number, length: number): Uint8Array {
    const out = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, out, done, length - done, offset + done);
      if (n === 0) throw new RangeError(`unexpected end of ${this.path} at byte ${offset + done}`);
      done += n;
    }
    return out;
  }

  copyTo(fd: number, offset: number, length: number): void {
    const buf = Buffer.allocUnsafe(Math.min(COPY_CHUNK, length));
    for (let done = 0; done < length; ) {
      const want = Math.min(buf.length, length - done);
      const n = readSync(this.fd, buf, 0, want, offset + done);
      if (n === 0) throw new RangeError(`unexpected end of ${this.path} at byte ${offset + done}`);
      writeAll(fd, buf.subarray(0, n));
      done += n;
    }
  }

  close(): void {
    closeSync(this.fd);
  }
}

/** A byte range of a source: how an unchanged weight is held. */
export interface ByteRange {
  source: ByteSource;
  offset: number;
  length: number;
}
