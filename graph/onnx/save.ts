import { closeSync, constants, copyFileSync, existsSync, openSync, realpathSync, renameSync, rmSync, statSync } from "node:fs";
import { basename, dirname, isAbsolute, relative, resolve } from "node:path";
import { clone, create, toBinary } from "@bufbuild/protobuf";
import { PipecError } from "../errors.ts";
import { makeDirs } from "../output-guard.ts";
import { sweepStaleTemps, tempPathFor, trackTemp, untrackTemp } from "../temp-outputs.ts";
import type { Model } from "../ir/model.ts";
import type { Tensor } from "../ir/tensor.ts";
import { modelToParts } from "../ir/to-proto.ts";
import { writeAll, type ByteRange } from "./byte-source.ts";
import {
  GraphProtoSchema,
  ModelProtoSchema,
  StringStringEntryProtoSchema,
  TensorProto_DataLocation,
  TensorProtoSchema,
  type TensorProto,
} from "./generated/onnx_pb.ts";
import { lenPrefix } from "./wire.ts";

export interface ExternalDataOptions {
  /** File name, relative to the output model's folder. Default `<model file name>.data`. */
  location?: string;
  /** Tensors of at least this many bytes go to external data; smaller ones stay inline. Default 1 KiB. */
  threshold?: number;
  /** Start a new shard (`<location>.1`, `.2`, ...) when a file would grow past this. Default: one file. */
  shardBytes?: number;
  /** Offsets are multiples of this. Default 4096. */
  align?: number;
}

export interface SaveOptions {
  /**
   * Where weights go. `preserve` (default): each unchanged weight stays where it was (inline, or in
   * its external file, which is reused, cloned or copied whole); weights a pass made go inline,
   * or to a new external file when the model already uses external data. `inline`: everything in
   * the .onnx. An object: weights above a threshold move to new external files.
   */
  weights?: "preserve" | "inline" | ExternalDataOptions;
  /**
   * How an unchanged external data file reaches a model saved in another folder. `clone`
   * (default): a copy-on-write clone where the filesystem offers one (Btrfs, XFS, APFS), else a
   * copy. `copy`: always a full copy. Never a hard link: onnx and onnx-ir refuse a data file with
   * several links (a "hardlink attack"), the input's as well as the output's. A model saved
   * beside its input keeps pointing at the same file (`reused`).
   */
  externalFiles?: ExternalFileMode;
}

export type ExternalFileMode = "clone" | "copy";

export interface ExternalFileReport {
  location: string;
  bytes: number;
  /** reused: the output already points at that file; cloned/copied: an input file provided whole; written: new. */
  how: "reused" | "cloned" | "copied" | "written";
}

export interface SaveReport {
  path: string;
  modelBytes: number;
  externalFiles: ExternalFileReport[];
}

type Chunk = Uint8Array | ByteRange;
const MODEL_GRAPH = 7;
const GRAPH_INITIALIZER = 5;
const TENSOR_RAW_DATA = 9;
const PROTOBUF_LIMIT = 2 ** 31 - 1;

/**
 * Writes a model atomically: every file goes to a temporary name in the target folder and is
 * renamed only once all were written. Weight bytes are streamed from where they lie (a range of
 * the input or an array a pass made); unchanged external files are never rewritten.
 */
export function saveModel(model: Model, path: string, opts: SaveOptions = {}): SaveReport {
  const outPath = resolve(path);
  const outDir = dirname(outPath);
  makeDirs(outDir, path);
  sweepStaleTemps(outDir);
  const mode = opts.weights ?? "preserve";
  const parts = modelToParts(model);
  const files = new ExternalFiles(outDir, basename(outPath), mode, hasExternal(parts.initializers));

  const initializerChunks: Chunk[][] = parts.initializers.map((t) => encodeInitializer(t, files));
  const graphHead = toBinary(GraphProtoSchema, parts.graph);
  const graphLength = graphHead.byteLength + initializerChunks.flat().reduce((n, c) => n + chunkLength(c), 0);
  const modelHead = toBinary(ModelProtoSchema, parts.model);
  const modelChunks: Chunk[] = [modelHead, lenPrefix(MODEL_GRAPH, graphLength), graphHead, ...initializerChunks.flat()];
  const modelBytes = modelChunks.reduce((n, c) => n + chunkLength(c), 0);
  if (modelBytes > PROTOBUF_LIMIT) {
    throw new PipecError("too-large", `the model would be ${modelBytes} bytes, over protobuf's 2 GiB limit: save its weights as external data`);
  }
  for (const origin of collectExternalOrigins(model)) files.provide(origin.location, origin.resolvedPath);
  const readFrom = sourcePaths(modelChunks, files);
  if (existsSync(outPath) && readFrom.has(realpathSync(outPath))) {
    throw new PipecError("overwrite-input", `refusing to overwrite '${path}': it is the model being read; write to another path`);
  }

  const staged: [string, string][] = [];
  try {
    const reports = files.stage(staged, opts.externalFiles ?? "clone", readFrom);
    const tmp = stageTemp(staged, outPath);
    writeChunks(tmp, modelChunks);
    for (const [from, to] of staged) {
      renameSync(from, to);
      untrackTemp(from);
    }
    return { path: outPath, modelBytes, externalFiles: reports };
  } catch (e) {
    for (const [from] of staged) {
      rmSync(from, { force: true });
      untrackTemp(from);
    }
    throw e;
  }
}

function encodeInitializer(t: Tensor, files: ExternalFiles): Chunk[] {
  const placed = files.place(t);
  if (placed.proto) return prefixed(GRAPH_INITIALIZER, [toBinary(TensorProtoSchema, placed.proto)]);
  const head = toBinary(TensorProtoSchema, placed.head!);
  return prefixed(GRAPH_INITIALIZER, [head, ...prefixed(TENSOR_RAW_DATA, [placed.raw!])]);
}

function prefixed(field: number, chunks: Chunk[]): Chunk[] {
  return [lenPrefix(field, chunks.reduce((n, c) => n + chunkLength(c), 0)), ...chunks];
}

function chunkLength(c: Chunk): number {
  return c instanceof Uint8Array ? c.byteLength : c.length;
}

function writeChunks(path: string, chunks: Chunk[]): void {
  const fd = openSync(path, "w");
  try {
    for (const c of chunks) {
      if (c instanceof Uint8Array) writeAll(fd, c);
      else c.source.copyTo(fd, c.offset, c.length);
    }
  } finally {
    closeSync(fd);
  }
}

/** A temporary name for `target`, noted in `staged` and removed if the process is interrupted. */
function stageTemp(staged: [string, string][], target: string): string {
  const tmp = tempPathFor(target);
  staged.push([tmp, target]);
  trackTemp(tmp);
  return tmp;
}

/** Real paths of every file this save reads bytes from: it must not write over any of them. */
function sourcePaths(modelChunks: Chunk[], files: ExternalFiles): Set<string> {
  const paths = new Set<string>();
  for (const c of [...modelChunks, ...files.chunks()]) {
    if (!(c instanceof Uint8Array) && c.source.path) paths.add(realpathSync(c.source.path));
  }
  for (const p of files.providedPaths()) paths.add(realpathSync(p));
  return paths;
}

function hasExternal(tensors: Tensor[]): boolean {
  return tensors.some((t) => t.external);
}

/** External tensors that stay where they are, anywhere in the model (initializers, attributes, subgraphs). */
function collectExternalOrigins(model: Model): { location: string; resolvedPath: string }[] {
  const seen = new Map<string, string>();
  const visitTensor = (t: Tensor | undefined) => {
    if (t?.external) seen.set(t.external.location, t.external.resolvedPath);
  };
  const graphs = [model.graph, ...model.functions.map((f) => f.body)];
  for (const g of graphs) {
    const stack = [g];
    while (stack.length) {
      const graph = stack.pop()!;
      if (graph !== model.graph) for (const v of graph.initializers.values()) visitTensor(v.initializer);
      for (const n of graph.nodes()) {
        for (const a of n.attributes.values()) visitTensor(a.tensor);
        stack.push(...n.subgraphs());
      }
    }
  }
  return [...seen].map(([location, resolvedPath]) => ({ location, resolvedPath }));
}

interface Placement {
  /** The complete TensorProto to write (data in its own fields, or an external reference). */
  proto?: TensorProto;
  /** Or: the proto without data, followed by these raw bytes. */
  head?: TensorProto;
  raw?: Chunk;
}

/** Decides where each tensor's bytes go and lays out the new external files. */
class ExternalFiles {
  private readonly provided = new Map<string, string>();
  private readonly written: { location: string; chunks: Chunk[]; size: number }[] = [];
  private readonly external: Required<ExternalDataOptions> | undefined;

  constructor(
    private readonly outDir: string,
    modelFile: string,
    mode: SaveOptions["weights"],
    modelHasExternal: boolean,
  ) {
    const defaults = { location: `${modelFile}.data`, threshold: 1024, shardBytes: Infinity, align: 4096 };
    if (typeof mode === "object") this.external = { ...defaults, ...mode };
    else if (mode === "preserve" && modelHasExternal) this.external = defaults;
    this.mode = mode ?? "preserve";
  }

  private readonly mode: NonNullable<SaveOptions["weights"]>;

  place(t: Tensor): Placement {
    if (t.external && this.mode === "preserve") {
      this.provide(t.external.location, t.external.resolvedPath);
      return { proto: t.proto };
    }
    const toExternal = this.external && this.mode !== "inline" && t.byteLength >= this.external.threshold;
    const data: Chunk | undefined = t.range ?? t.ownBytes;
    if (!toExternal) {
      if (!data && !t.external) return { proto: t.proto }; // small, its data is in the proto's own fields
      return { head: withoutData(t.proto), raw: data ?? t.bytes() };
    }
    const { location, offset } = this.append(data ?? t.bytes());
    const head = withoutData(t.proto);
    head.dataLocation = TensorProto_DataLocation.EXTERNAL;
    head.externalData = [
      ["location", location],
      ["offset", String(offset)],
      ["length", String(t.byteLength)],
    ].map(([key, value]) => create(StringStringEntryProtoSchema, { key, value }));
    return { proto: head };
  }

  provide(location: string, resolvedPath: string): void {
    const known = this.provided.get(location);
    if (known && known !== resolvedPath) {
      throw new PipecError("external-data", `two different external data files are both called '${location}'`);
    }
    this.provided.set(location, resolvedPath);
  }

  private append(data: Chunk): { location: string; offset: number } {
    const ext = this.external!;
    const length = chunkLength(data);
    let file = this.written[this.written.length - 1];
    if (!file || (file.size > 0 && alignUp(file.size, ext.align) + length > ext.shardBytes)) {
      const location = this.written.length === 0 ? ext.location : `${ext.location}.${this.written.length}`;
      file = { location, chunks: [], size: 0 };
      this.written.push(file);
    }
    const offset = alignUp(file.size, ext.align);
    if (offset > file.size) file.chunks.push(new Uint8Array(offset - file.size));
    file.chunks.push(data);
    file.size = offset + length;
    return { location: file.location, offset };
  }

  chunks(): Chunk[] {
    return this.written.flatMap((f) => f.chunks);
  }

  providedPaths(): string[] {
    return [...this.provided.values()];
  }

  /** Writes new data files and clones or copies provided ones, all under temporary names. */
  stage(staged: [string, string][], mode: ExternalFileMode, readFrom: Set<string>): ExternalFileReport[] {
    const reports: ExternalFileReport[] = [];
    for (const file of this.written) {
      const target = this.target(file.location);
      if (this.provided.has(file.location) || (existsSync(target) && readFrom.has(realpathSync(target)))) {
        throw new PipecError("external-data", `refusing to overwrite '${file.location}': the model being saved reads its weights from it`);
      }
      const tmp = stageTemp(staged, target);
      writeChunks(tmp, file.chunks);
      reports.push({ location: file.location, bytes: file.size, how: "written" });
    }
    for (const [location, source] of this.provided) {
      const target = this.target(location);
      const bytes = statSync(source).size;
      if (existsSync(target) && sameFile(target, source)) {
        reports.push({ location, bytes, how: "reused" });
        continue;
      }
      makeDirs(dirname(target));
      const tmp = stageTemp(staged, target);
      reports.push({ location, bytes, how: provideFile(source, tmp, mode) });
    }
    return reports;
  }

  private target(location: string): string {
    const target = resolve(this.outDir, location);
    const rel = relative(this.outDir, target);
    if (rel.startsWith("..") || isAbsolute(rel)) {
      throw new PipecError("external-data", `external data location '${location}' escapes the output folder; refused`);
    }
    return target;
  }
}

/** Copies a file whole, as a copy-on-write clone when asked and the filesystem can. */
function provideFile(source: string, target: string, mode: ExternalFileMode): "cloned" | "copied" {
  if (mode === "clone") {
    try {
      copyFileSync(source, target, constants.COPYFILE_FICLONE_FORCE);
      return "cloned";
    } catch {
      // This filesystem has no clones (ext4, tmpfs), or source and target are on different ones.
    }
  }
  copyFileSync(source, target);
  return "copied";
}

function sameFile(a: string, b: string): boolean {
  const sa = statSync(a);
  const sb = statSync(b);
  return sa.ino === sb.ino && sa.dev === sb.dev;
}

function alignUp(n: number, align: number): number {
  return Math.ceil(n / align) * align;
}

/** The tensor's proto with every data field cleared (raw, typed, external). */
function withoutData(p: TensorProto): TensorProto {
  const out = clone(TensorProtoSchema, p);
  out.externalData = [];
  out.floatData = [];
  out.int32Data = [];
  out.int64Data = [];
  out.doubleData = [];
  out.uint64Data = [];
  out.stringData = [];
  delete (out as Partial<TensorProto>).rawData;
  delete (out as Partial<TensorProto>).dataLocation;
  return out;
}
