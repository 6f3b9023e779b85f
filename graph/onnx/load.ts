import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import { looksLikeText } from "../file-kind.ts";
import { PipecError } from "../errors.ts";
import { modelFromParts } from "../ir/from-proto.ts";
import type { Model } from "../ir/model.ts";
import { FileSource, MemorySource, type ByteSource } from "./byte-source.ts";
import { GraphProtoSchema, ModelProtoSchema, TensorProtoSchema } from "./generated/onnx_pb.ts";
import { readSpans, scanModel } from "./scan.ts";

export interface LoadOptions {
  /** raw_data of at least this many bytes is referenced, not read. Default 1 KiB. */
  lazyMinBytes?: number;
  /** Files up to this size are read into memory in one go; larger ones are read by range. Default 64 MiB. */
  readWholeBelow?: number;
}

/** Loads an .onnx file into the IR. Weights stay in their files until something reads them. */
export function loadModel(path: string, opts: LoadOptions = {}): Model {
  const abs = resolve(path);
  if (!existsSync(abs)) throw new PipecError("not-found", `${path}: no such file`);
  const stat = statSync(abs);
  if (!stat.isFile()) throw new PipecError("not-found", `${path}: not a file`);
  const source: ByteSource = stat.size <= (opts.readWholeBelow ?? 64 << 20) ? new MemorySource(readFileSync(abs), abs) : new FileSource(abs);
  return withFileContext(path, () => loadFromSource(source, dirname(abs), opts));
}

/** Loads a model from bytes; external data, if any, is resolved against `baseDir`. */
export function loadModelFromBytes(bytes: Uint8Array, baseDir?: string, opts: LoadOptions = {}): Model {
  return loadFromSource(new MemorySource(bytes), baseDir, opts);
}

function loadFromSource(source: ByteSource, baseDir: string | undefined, opts: LoadOptions): Model {
  if (source.size === 0) throw new PipecError("invalid-model", "the file is empty, not an ONNX model");
  if (looksLikeText(source.read(0, Math.min(source.size, 4096)))) throw new PipecError("invalid-model", "not an ONNX model (a text file; a .pipe file goes to pipec check / compile / run)");
  const scanned = scanModel(source, opts.lazyMinBytes ?? 1024);
  if (!scanned.graph) throw new PipecError("invalid-model", "not an ONNX model: it has no graph");
  const decode = <T>(what: string, f: () => T): T => {
    try {
      return f();
    } catch (e) {
      throw new PipecError("invalid-model", `not a valid ONNX protobuf: cannot decode the ${what}: ${(e as Error).message}`);
    }
  };
  const model = decode("model", () => fromBinary(ModelProtoSchema, readSpans(scanned.model)));
  const graph = decode("graph", () => fromBinary(GraphProtoSchema, readSpans(scanned.graph!)));
  const initializers = scanned.initializers.map((t, i) => ({
    proto: decode(`initializer #${i}`, () => fromBinary(TensorProtoSchema, readSpans(t.spans))),
    raw: t.raw,
  }));
  if (model.irVersion === undefined || model.irVersion <= 0n) throw new PipecError("invalid-model", "not an ONNX model: ir_version is missing");
  // The IR holds versions as numbers; past 2^53 they would not survive the round trip.
  if (model.irVersion > BigInt(Number.MAX_SAFE_INTEGER)) throw new PipecError("invalid-model", `not an ONNX model: ir_version ${model.irVersion} is no version of ONNX`);
  const opset = model.opsetImport.find((o) => o.version < 0n || o.version > BigInt(Number.MAX_SAFE_INTEGER));
  if (opset) throw new PipecError("invalid-model", `opset import '${opset.domain || "ai.onnx"}' has version ${opset.version}, which no operator set has`);
  return modelFromParts({ model, graph, initializers }, baseDir);
}

/** Prefixes errors with the file they concern. */
function withFileContext<T>(path: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof PipecError && !e.message.startsWith(path)) throw new PipecError(e.code, `${path}: ${e.message}`, e.location);
    throw e;
  }
}
