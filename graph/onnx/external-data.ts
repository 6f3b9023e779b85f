import { existsSync, realpathSync } from "node:fs";
import { isAbsolute, relative, resolve } from "node:path";
import { PipecError } from "../errors.ts";
import { TensorProto_DataLocation, type TensorProto } from "./generated/onnx_pb.ts";
import { FileSource, type ByteRange } from "./byte-source.ts";

export function isExternal(t: TensorProto): boolean {
  return t.dataLocation === TensorProto_DataLocation.EXTERNAL;
}

export function externalEntry(t: TensorProto, key: string): string | undefined {
  return t.externalData.find((e) => e.key === key)?.value;
}

/**
 * Resolves external-data locations against the model's folder, refusing any that escape it
 * (`../x`, absolute paths, symlinks pointing outside), and keeps one open file per location.
 */
export class ExternalDataResolver {
  private readonly files = new Map<string, FileSource>();
  /** Locations already checked, and the path each resolves to: hundreds of tensors share one file. */
  private readonly checked = new Map<string, string>();
  private readonly baseReal: string | undefined;

  constructor(readonly baseDir: string | undefined) {
    this.baseReal = baseDir && existsSync(baseDir) ? realpathSync(baseDir) : undefined;
  }

  /** Absolute path of a location, after checking that it stays inside the model's folder (once per location). */
  resolvePath(location: string, tensorName: string): string {
    let path = this.checked.get(location);
    if (path === undefined) this.checked.set(location, (path = this.check(location, tensorName)));
    return path;
  }

  private check(location: string, tensorName: string): string {
    if (!this.baseDir || !this.baseReal) {
      throw new PipecError("external-data", `tensor '${tensorName}' has external data '${location}' but the model was not loaded from a file`);
    }
    const escapes = (p: string, base: string) => {
      const rel = relative(base, p);
      return rel === "" || rel.startsWith("..") || isAbsolute(rel);
    };
    const path = resolve(this.baseDir, location);
    if (isAbsolute(location) || escapes(path, resolve(this.baseDir))) {
      throw new PipecError("external-data", `tensor '${tensorName}': external data location '${location}' escapes the model's folder; refused`);
    }
    if (!existsSync(path)) {
      throw new PipecError("external-data", `tensor '${tensorName}': external data file '${location}' not found next to the model`);
    }
    if (escapes(realpathSync(path), this.baseReal)) {
      throw new PipecError("external-data", `tensor '${tensorName}': external data location '${location}' links outside the model's folder; refused`);
    }
    return path;
  }

  /** The byte range of an external tensor's data, checked against the file's size. */
  range(t: TensorProto): { range: ByteRange; location: string; path: string } {
    const location = externalEntry(t, "location");
    if (location === undefined) throw new PipecError("external-data", `tensor '${t.name}' is marked external but has no location`);
    const path = this.resolvePath(location, t.name);
    let source = this.files.get(path);
    if (!source) this.files.set(path, (source = new FileSource(path)));
    const offset = Number(externalEntry(t, "offset") ?? 0);
    const lengthEntry = externalEntry(t, "length");
    const length = lengthEntry === undefined ? source.size - offset : Number(lengthEntry);
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > source.size) {
      throw new PipecError(
        "external-data",
        `tensor '${t.name}': external data range [${offset}, ${offset + length}) lies outside '${location}' (${source.size} bytes)`,
      );
    }
    return { range: { source, offset, length }, location, path };
  }
}
