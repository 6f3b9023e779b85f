import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { create, equals, fromBinary, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { PipecError } from "../graph/errors.ts";
import { Builder, DataType, Model } from "../graph/ir/index.ts";
import { ModelProtoSchema, NodeProtoSchema, StringStringEntryProtoSchema, TensorProto_DataLocation } from "../graph/onnx/generated/onnx_pb.ts";
import { loadModel, loadModelFromBytes, saveModel } from "../graph/onnx/index.ts";
import { HAVE_SHARED, SHARED_FIXTURES, SKIP_SHARED_REASON, sharedOnnxFiles } from "./helpers/fixtures.ts";
import { runSeeded } from "./helpers/ort-inputs.ts";
import { tempDir } from "./helpers/tmp.ts";

const dir = tempDir();

/** y = Softmax(x @ W1 + b) @ W2: weights large enough to be lazy (> 1 KiB each). */
function mlp(): Model {
  const m = new Model({ opsets: { "": 18 } });
  const b = new Builder(m.graph);
  const x = b.input("x", DataType.FLOAT, ["B", 64]);
  const w1 = b.constant(DataType.FLOAT, [64, 32], Float32Array.from({ length: 64 * 32 }, (_, i) => Math.sin(i) / 8), "w1");
  const bias = b.constant(DataType.FLOAT, [32], Float32Array.from({ length: 32 }, (_, i) => i / 32), "bias");
  const w2 = b.constant(DataType.FLOAT, [32, 16], Float32Array.from({ length: 32 * 16 }, (_, i) => Math.cos(i) / 4), "w2");
  const h = b.op.Softmax(b.op.Add(b.op.MatMul(x, w1), bias), { axis: -1 });
  b.output(b.typed(b.op.MatMul(h, w2), DataType.FLOAT, ["B", 16]), "y");
  return m;
}

async function outputsOf(path: string) {
  const out = await runSeeded(path, 7, { B: 2 });
  return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, Buffer.from(t.data as Float32Array).toString("hex")]));
}

describe.skipIf(!HAVE_SHARED)(`model I/O round trip of the shared fixtures (${HAVE_SHARED ? "present" : SKIP_SHARED_REASON})`, () => {
  it.each(sharedOnnxFiles())("%s: decoded protobuf and onnxruntime outputs are unchanged", async (rel) => {
    const src = join(SHARED_FIXTURES, rel);
    const out = join(dir, rel.replaceAll("/", "_"));
    saveModel(loadModel(src), out);
    expect(equals(ModelProtoSchema, fromBinary(ModelProtoSchema, readFileSync(src)), fromBinary(ModelProtoSchema, readFileSync(out)))).toBe(true);
    expect(await outputsOf(out)).toEqual(await outputsOf(src));
  });
});

describe("model I/O round trip", () => {
  it("gives byte-identical files for the same input", () => {
    const a = join(dir, "det-a.onnx");
    const b = join(dir, "det-b.onnx");
    saveModel(mlp(), a);
    saveModel(loadModel(a), b);
    saveModel(loadModel(b), join(dir, "det-c.onnx"));
    expect(readFileSync(join(dir, "det-c.onnx")).equals(readFileSync(b))).toBe(true);
  });

  it("keeps unknown fields, doc strings and metadata_props", () => {
    const proto = fromBinary(ModelProtoSchema, readFileSync(saveOnce(mlp(), "meta-src.onnx")));
    proto.docString = "model doc";
    proto.metadataProps.push(create(StringStringEntryProtoSchema, { key: "author", value: "pipec tests" }));
    proto.graph!.docString = "graph doc";
    const node = proto.graph!.node[0]!;
    node.docString = "node doc";
    node.metadataProps.push(create(StringStringEntryProtoSchema, { key: "origin", value: "test" }));
    // A field number onnx.proto does not define (999, varint 42) on a node and on the model.
    const unknown = Uint8Array.from([0xb8, 0x3e, 42]);
    proto.graph!.node[0] = fromBinary(NodeProtoSchema, concat(toBinary(NodeProtoSchema, node), unknown));
    const bytes = concat(toBinary(ModelProtoSchema, proto), unknown);
    const out = join(dir, "meta-out.onnx");
    saveModel(loadModelFromBytes(bytes), out);
    const expected = fromBinary(ModelProtoSchema, bytes);
    const actual = fromBinary(ModelProtoSchema, readFileSync(out));
    expect(equals(ModelProtoSchema, expected, actual)).toBe(true);
    expect(readFileSync(out).includes(Buffer.from(unknown))).toBe(true);
  });
});

describe("lazy weights", () => {
  it("references raw_data as file ranges instead of reading it", () => {
    const path = saveOnce(mlp(), "lazy.onnx");
    const m = loadModel(path, { readWholeBelow: 0 });
    const w1 = m.graph.initializers.get("w1")!.initializer!;
    expect(w1.range?.source.path).toBe(path);
    expect(w1.range?.length).toBe(64 * 32 * 4);
    expect(Array.from((w1.toArray() as Float32Array).slice(0, 3))).toEqual(Array.from(Float32Array.from([0, Math.sin(1) / 8, Math.sin(2) / 8])));
  });
});

describe("external data", () => {
  it("writes tensors above the threshold to an aligned external file that onnxruntime reads", async () => {
    const inline = saveOnce(mlp(), "ext-inline.onnx");
    const out = join(dir, "ext", "model.onnx");
    const report = saveModel(loadModel(inline), out, { weights: { threshold: 1024, align: 4096 } });
    expect(report.externalFiles).toEqual([{ location: "model.onnx.data", bytes: 64 * 32 * 4 + 32 * 16 * 4, how: "written" }]);
    const m = loadModel(out);
    const offsets = [...m.graph.initializers.values()].flatMap((v) => (v.initializer!.external ? [v.initializer!.range!.offset] : []));
    expect(offsets).toEqual([0, 64 * 32 * 4]);
    expect(m.graph.initializers.get("bias")!.initializer!.external).toBeUndefined();
    expect(await outputsOf(out)).toEqual(await outputsOf(inline));
  });

  it("shards by size", () => {
    const out = join(dir, "shards", "model.onnx");
    const report = saveModel(mlp(), out, { weights: { threshold: 1024, shardBytes: 4096, location: "w.bin" } });
    expect(report.externalFiles.map((f) => f.location)).toEqual(["w.bin", "w.bin.1"]);
  });

  it("reuses, clones or copies, or inlines unchanged external files, never hard-linking them", async () => {
    const src = join(dir, "keep", "model.onnx");
    saveModel(mlp(), src, { weights: { threshold: 1024 } });
    const same = saveModel(loadModel(src), join(dir, "keep", "copy.onnx"));
    expect(same.externalFiles).toEqual([{ location: "model.onnx.data", bytes: statSync(join(dir, "keep", "model.onnx.data")).size, how: "reused" }]);
    const elsewhere = saveModel(loadModel(src), join(dir, "keep2", "model.onnx"));
    expect(["cloned", "copied"]).toContain(elsewhere.externalFiles[0]!.how);
    expect(statSync(join(dir, "keep2", "model.onnx.data")).ino).not.toBe(statSync(join(dir, "keep", "model.onnx.data")).ino);
    expect(readFileSync(join(dir, "keep2", "model.onnx.data")).equals(readFileSync(join(dir, "keep", "model.onnx.data")))).toBe(true);
    const copied = saveModel(loadModel(src), join(dir, "keep4", "model.onnx"), { externalFiles: "copy" });
    expect(copied.externalFiles[0]!.how).toBe("copied");
    const inlined = join(dir, "keep3", "model.onnx");
    expect(saveModel(loadModel(src), inlined, { weights: "inline" }).externalFiles).toEqual([]);
    expect(existsSync(join(dir, "keep3", "model.onnx.data"))).toBe(false);
    expect(await outputsOf(inlined)).toEqual(await outputsOf(src));
  });

  it.each([
    ["../../x", /escapes the model's folder/],
    ["/etc/passwd", /escapes the model's folder/],
    ["missing.bin", /not found/],
  ])("refuses location %s", (location, message) => {
    const path = saveWithLocation(`bad-${location.replace(/\W/g, "")}`, location);
    expect(() => loadModel(path)).toThrow(message);
    expect(() => loadModel(path)).toThrow(PipecError);
  });

  it("refuses a symlink that leads outside the model's folder", () => {
    const sub = join(dir, "symlink");
    mkdirSync(sub, { recursive: true });
    writeFileSync(join(dir, "outside.bin"), new Uint8Array(64 * 32 * 4));
    symlinkSync(join(dir, "outside.bin"), join(sub, "w.bin"));
    const path = saveWithLocation("symlink", "w.bin");
    expect(() => loadModel(path)).toThrow(/links outside the model's folder/);
  });

  it("refuses a range past the end of the data file", () => {
    const sub = join(dir, "short");
    mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, "w.bin"), new Uint8Array(100));
    const path = saveWithLocation("short", "w.bin");
    expect(() => loadModel(path)).toThrow(/needs 8192 bytes \(float\[64,32\]\) but its external data 'w.bin' holds 100/);
  });

  it("writes nothing when a save fails", () => {
    const sub = join(dir, "atomic");
    const src = join(sub, "model.onnx");
    saveModel(mlp(), src, { weights: { threshold: 1024, location: "w.data" } });
    const before = readdirSync(sub).sort();
    expect(() => saveModel(loadModel(src), join(sub, "other.onnx"), { weights: { threshold: 1024, location: "w.data" } })).toThrow(/refusing to overwrite 'w.data'/);
    expect(readdirSync(sub).sort()).toEqual(before);
  });
});

describe("bad files", () => {
  it("names a truncated protobuf", () => {
    const bytes = readFileSync(saveOnce(mlp(), "trunc-src.onnx"));
    expect(() => loadModelFromBytes(bytes.subarray(0, bytes.length - 100))).toThrow(/truncated/);
  });
  it("names a file that is not ONNX", () => {
    expect(() => loadModelFromBytes(new TextEncoder().encode("hello, this is not a model\n"))).toThrow(PipecError);
  });
  it("names a missing file", () => {
    expect(() => loadModel(join(dir, "nope.onnx"))).toThrow(/no such file/);
  });
});

function saveOnce(m: Model, name: string): string {
  const path = join(dir, name);
  saveModel(m, path);
  return path;
}

/** A model whose w1 claims to live in `location`, written without validation (as a hostile file would be). */
function saveWithLocation(sub: string, location: string): string {
  const proto = fromBinary(ModelProtoSchema, readFileSync(saveOnce(mlp(), `${sub}-src.onnx`)));
  const w1 = proto.graph!.initializer.find((t) => t.name === "w1")!;
  delete (w1 as Partial<typeof w1>).rawData;
  w1.dataLocation = TensorProto_DataLocation.EXTERNAL;
  w1.externalData = [create(StringStringEntryProtoSchema, { key: "location", value: location })];
  const folder = join(dir, sub);
  mkdirSync(folder, { recursive: true });
  const path = join(folder, "model.onnx");
  writeFileSync(path, toBinary(ModelProtoSchema, proto));
  return path;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
