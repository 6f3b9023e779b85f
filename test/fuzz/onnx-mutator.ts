// A protobuf-aware mutator of ONNX models. Wire-level edits walk the bytes as protobuf fields
// (nested messages found by parsing them) and write them back with lengths recomputed, so a
// flipped varint or a wrong wire type sits inside an otherwise well-formed file; model-level edits
// decode the ModelProto and break what a loader must check: huge dims, cycles, dangling names,
// hostile external data, deeply nested subgraphs.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  AttributeProto_AttributeType,
  AttributeProtoSchema,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  StringStringEntryProtoSchema,
  TensorProto_DataLocation,
  type GraphProto,
  type ModelProto,
} from "../../graph/onnx/generated/onnx_pb.ts";
import { Random } from "./random.ts";

export interface OnnxSeed {
  name: string;
  bytes: Uint8Array;
}

export interface OnnxCase {
  name: string;
  bytes: Uint8Array;
}

/** A small file every case finds beside its model, for external data entries to point into. */
export const BESIDE_FILE = "data.bin";

// ---- the wire level ----

interface WireField {
  field: number;
  wire: number;
  /** The wire type written, where a mutation lies about it. */
  writtenWire?: number;
  varint?: bigint;
  bytes?: Uint8Array;
  children?: WireField[];
}

function readVarint(b: Uint8Array, at: number): [bigint, number] | undefined {
  let value = 0n;
  for (let shift = 0n, i = at; i < b.length && shift < 70n; i++, shift += 7n) {
    value |= BigInt(b[i]! & 0x7f) << shift;
    if (b[i]! < 0x80) return [value, i + 1];
  }
  return undefined;
}

/** The fields of a message, or undefined when the bytes are not one. */
function parseFields(b: Uint8Array, depth: number): WireField[] | undefined {
  const fields: WireField[] = [];
  let at = 0;
  while (at < b.length) {
    const tag = readVarint(b, at);
    if (!tag) return undefined;
    const [key, next] = tag;
    const field = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (field < 1 || field > 30) return undefined;
    at = next;
    if (wire === 0) {
      const v = readVarint(b, at);
      if (!v) return undefined;
      fields.push({ field, wire, varint: v[0] });
      at = v[1];
    } else if (wire === 1 || wire === 5) {
      const n = wire === 1 ? 8 : 4;
      if (at + n > b.length) return undefined;
      fields.push({ field, wire, bytes: b.subarray(at, at + n) });
      at += n;
    } else if (wire === 2) {
      const len = readVarint(b, at);
      if (!len || len[1] + Number(len[0]) > b.length) return undefined;
      const bytes = b.subarray(len[1], len[1] + Number(len[0]));
      const children = depth < 8 && bytes.length > 0 ? parseFields(bytes, depth + 1) : undefined;
      fields.push({ field, wire, bytes, ...(children && { children }) });
      at = len[1] + Number(len[0]);
    } else return undefined;
  }
  return fields;
}

function varintBytes(v: bigint): number[] {
  const out: number[] = [];
  let x = BigInt.asUintN(64, v);
  do {
    const byte = Number(x & 0x7fn);
    x >>= 7n;
    out.push(x ? byte | 0x80 : byte);
  } while (x);
  return out;
}

function serialize(fields: readonly WireField[]): Uint8Array {
  const parts: (number[] | Uint8Array)[] = [];
  for (const f of fields) {
    parts.push(varintBytes(BigInt((f.field << 3) | (f.writtenWire ?? f.wire))));
    if (f.wire === 0) parts.push(varintBytes(f.varint!));
    else if (f.wire === 2) {
      const payload = f.children ? serialize(f.children) : f.bytes!;
      parts.push(varintBytes(BigInt(payload.length)), payload);
    } else parts.push(f.bytes!);
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function allFields(fields: WireField[], out: WireField[] = []): WireField[] {
  for (const f of fields) {
    out.push(f);
    if (f.children) allFields(f.children, out);
  }
  return out;
}

/** Each field with the list that holds it. */
function placedFields(fields: WireField[], out: [WireField[], number][] = []): [WireField[], number][] {
  fields.forEach((f, i) => {
    out.push([fields, i]);
    if (f.children) placedFields(f.children, out);
  });
  return out;
}

const EXTREME_VARINTS = [0n, 1n, 127n, 128n, 2n ** 31n - 1n, 2n ** 31n, 2n ** 32n, 2n ** 53n + 1n, 2n ** 63n - 1n, 2n ** 64n - 1n];

type WireMutation = (fields: WireField[], r: Random) => boolean;

const WIRE_MUTATIONS: Record<string, WireMutation> = {
  flipVarint: (fields, r) => {
    const varints = allFields(fields).filter((f) => f.wire === 0);
    if (!varints.length) return false;
    r.pick(varints).varint = r.chance(0.7) ? r.pick(EXTREME_VARINTS) : BigInt(r.int(2 ** 31));
    return true;
  },
  wrongWireType: (fields, r) => {
    const f = r.pick(allFields(fields));
    f.writtenWire = r.pick([0, 1, 2, 3, 4, 5, 6, 7].filter((w) => w !== f.wire));
    return true;
  },
  dropField: (fields, r) => {
    const [list, i] = r.pick(placedFields(fields));
    list.splice(i, 1);
    return true;
  },
  duplicateField: (fields, r) => {
    const [list, i] = r.pick(placedFields(fields));
    list.splice(i, 0, structuredClone(list[i]!));
    return true;
  },
  cutPayload: (fields, r) => {
    const f = r.pick(allFields(fields).filter((x) => x.wire === 2));
    if (!f) return false;
    const bytes = f.children ? serialize(f.children) : f.bytes!;
    delete f.children;
    f.bytes = bytes.subarray(0, r.int(bytes.length + 1));
    return true;
  },
  scramblePayload: (fields, r) => {
    const f = r.pick(allFields(fields).filter((x) => x.wire === 2 && !x.children && x.bytes!.length > 0));
    if (!f) return false;
    const bytes = Uint8Array.from(f.bytes!);
    for (let k = 1 + r.int(4); k > 0; k--) bytes[r.int(bytes.length)] = r.int(256);
    f.bytes = bytes;
    return true;
  },
};

// ---- the model level ----

type ModelMutation = (m: ModelProto, r: Random) => boolean;

function graphsOf(g: GraphProto, out: GraphProto[] = []): GraphProto[] {
  out.push(g);
  for (const n of g.node) for (const a of n.attribute) for (const sub of [...(a.g ? [a.g] : []), ...a.graphs]) graphsOf(sub, out);
  return out;
}

const HUGE_DIMS = [2n ** 40n, 2n ** 62n, -1n, -(2n ** 40n), 0n, 2n ** 31n];
const HOSTILE_LOCATIONS = ["../../../../etc/passwd", "/etc/passwd", "model.onnx", ".", "..", "a\u0000b", "missing.bin", BESIDE_FILE, "sub/../../x", "C:\\x", ""];
const HOSTILE_NUMBERS = ["0", "4", "-1", "18446744073709551615", "9007199254740993", "abc", "1e3", ""];

const MODEL_MUTATIONS: Record<string, ModelMutation> = {
  hugeDims: (m, r) => {
    const g = m.graph!;
    if (g.initializer.length && r.chance(0.6)) {
      const t = r.pick(g.initializer);
      if (!t.dims.length) t.dims.push(1n);
      t.dims[r.int(t.dims.length)] = r.pick(HUGE_DIMS);
      return true;
    }
    const v = r.pick([...g.input, ...g.output]);
    const type = v?.type?.value;
    if (type?.case !== "tensorType" || !type.value.shape?.dim.length) return false;
    const dim = r.pick(type.value.shape.dim);
    dim.value = { case: "dimValue", value: r.pick(HUGE_DIMS) };
    return true;
  },
  cycle: (m, r) => {
    const nodes = m.graph!.node;
    if (nodes.length < 2) return false;
    const i = r.int(nodes.length - 1);
    const j = i + 1 + r.int(nodes.length - i - 1);
    const later = nodes[j]!.output[0];
    if (!later || !nodes[i]!.input.length) return false;
    nodes[i]!.input[r.int(nodes[i]!.input.length)] = later;
    return true;
  },
  selfLoop: (m, r) => {
    const n = r.pick(m.graph!.node);
    if (!n?.input.length || !n.output.length) return false;
    n.input[0] = n.output[0]!;
    return true;
  },
  dangling: (m, r) => {
    const n = r.pick(m.graph!.node);
    if (!n) return false;
    if (n.input.length && r.chance(0.7)) n.input[r.int(n.input.length)] = `dangling_${r.int(1000)}`;
    else m.graph!.output.push(...m.graph!.output.slice(0, 1).map((o) => ({ ...o, name: `dangling_out_${r.int(1000)}` })));
    return true;
  },
  duplicateName: (m, r) => {
    const nodes = m.graph!.node;
    if (nodes.length < 2) return false;
    const [a, b] = [r.pick(nodes), r.pick(nodes)];
    if (!a.output.length || !b.output.length) return false;
    b.output[0] = a.output[0]!;
    return true;
  },
  hostileExternal: (m, r) => {
    const t = r.pick(m.graph!.initializer);
    if (!t) return false;
    t.dataLocation = TensorProto_DataLocation.EXTERNAL;
    t.rawData = new Uint8Array(0);
    const entry = (key: string, value: string) => create(StringStringEntryProtoSchema, { key, value });
    t.externalData = [entry("location", r.pick(HOSTILE_LOCATIONS))];
    if (r.chance(0.6)) t.externalData.push(entry("offset", r.pick(HOSTILE_NUMBERS)));
    if (r.chance(0.6)) t.externalData.push(entry("length", r.pick(HOSTILE_NUMBERS)));
    if (r.chance(0.2)) t.externalData.push(entry("location", "second.bin"));
    return true;
  },
  shortRawData: (m, r) => {
    const t = r.pick(m.graph!.initializer.filter((x) => x.rawData.length > 0));
    if (!t) return false;
    t.rawData = t.rawData.subarray(0, r.int(t.rawData.length));
    return true;
  },
  nestedSubgraphs: (m, r) => {
    // An If whose branches nest Ifs `depth` deep, each reading a value of the outermost graph.
    const g = m.graph!;
    const outer = g.input[0]?.name ?? g.initializer[0]?.name;
    if (!outer) return false;
    const depth = r.pick([1, 2, 8, 64, 400]);
    const leaf = () => create(GraphProtoSchema, { name: `leaf`, node: [create(NodeProtoSchema, { opType: "Identity", input: [outer], output: [`nested_leaf`] })], output: [{ ...g.input[0]!, name: "nested_leaf" }] });
    let branch = leaf();
    for (let d = 0; d < depth; d++) {
      const node = create(NodeProtoSchema, {
        opType: "If",
        name: `if_${d}`,
        input: [outer],
        output: [`nested_${d}`],
        attribute: [
          create(AttributeProtoSchema, { name: "then_branch", type: AttributeProto_AttributeType.GRAPH, g: branch }),
          create(AttributeProtoSchema, { name: "else_branch", type: AttributeProto_AttributeType.GRAPH, g: r.chance(0.8) ? leaf() : undefined }),
        ],
      });
      branch = create(GraphProtoSchema, { name: `level_${d}`, node: [node], output: [{ ...g.input[0]!, name: `nested_${d}` }] });
    }
    g.node.push(...branch.node);
    return true;
  },
  wrongAttribute: (m, r) => {
    const withAttrs = graphsOf(m.graph!).flatMap((g) => g.node).filter((n) => n.attribute.length);
    const a = r.pick(withAttrs)?.attribute;
    if (!a) return false;
    const attr = r.pick(a);
    attr.type = r.pick([AttributeProto_AttributeType.GRAPH, AttributeProto_AttributeType.TENSOR, AttributeProto_AttributeType.STRINGS, 99 as AttributeProto_AttributeType]);
    if (r.chance(0.5)) attr.ints = [2n ** 62n, -(2n ** 62n)];
    return true;
  },
  unknownOperator: (m, r) => {
    const n = r.pick(m.graph!.node);
    if (!n) return false;
    if (r.chance(0.5)) n.opType = r.pick(["NoSuchOp", "", "Attention", "If", "Loop", "Scan"]);
    else n.domain = r.pick(["com.evil", "com.microsoft", "ai.onnx.ml", "pipec"]);
    return true;
  },
  opsets: (m, r) => {
    if (r.chance(0.5)) m.opsetImport = [];
    else for (const o of m.opsetImport) o.version = r.pick([0n, -1n, 1n, 999n, 2n ** 62n]);
    return true;
  },
  irVersion: (m, r) => {
    m.irVersion = r.pick([0n, -1n, 1n, 999n, 2n ** 63n - 1n]);
    return true;
  },
  emptyGraph: (m) => {
    m.graph!.node = [];
    return true;
  },
};

/** `n` mutated models from the seeds, the same for the same `seed`. */
export function* onnxCases(seeds: readonly OnnxSeed[], n: number, seed: number): Generator<OnnxCase> {
  const r = new Random(seed);
  const modelNames = Object.keys(MODEL_MUTATIONS);
  const wireNames = Object.keys(WIRE_MUTATIONS);
  for (let i = 0; i < n; i++) {
    const from = r.pick(seeds);
    const applied: string[] = [];
    let bytes: Uint8Array;
    const kind = r.next();
    if (kind < 0.1) {
      bytes = from.bytes.subarray(0, r.int(from.bytes.length));
      applied.push(`truncate@${bytes.length}`);
    } else if (kind < 0.55) {
      const model = fromBinary(ModelProtoSchema, from.bytes);
      for (let k = 1 + r.int(2); k > 0; k--) {
        const name = r.pick(modelNames);
        if (MODEL_MUTATIONS[name]!(model, r)) applied.push(name);
      }
      bytes = toBinary(ModelProtoSchema, model);
    } else {
      const fields = parseFields(from.bytes, 0)!;
      for (let k = 1 + r.int(3); k > 0; k--) {
        const name = r.pick(wireNames);
        if (WIRE_MUTATIONS[name]!(fields, r)) applied.push(name);
      }
      bytes = serialize(fields);
    }
    yield { name: `onnx#${i} ${from.name} ${applied.join("+") || "unchanged"}`, bytes };
  }
}
