// Bad input through the real CLI: each case must give ONE line naming the problem, a non-zero
// exit code, no stack trace and no output file.
import { create } from "@bufbuild/protobuf";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { reportError } from "../compiler/cli/main.ts";
import { DataType } from "../graph/ir/dtype.ts";
import { StringStringEntryProtoSchema, TensorProto_DataLocation, TensorProtoSchema } from "../graph/onnx/generated/onnx_pb.ts";
import { cycle, handmadeModel } from "./helpers/handmade-models.ts";
import { pipec, pipecProcess, type CliResult } from "./helpers/run-cli.ts";
import { tempDir } from "./helpers/tmp.ts";

const dir = tempDir();
const GOOD = join(import.meta.dirname, "fixtures", "reference", "llama-dynamo", "model.onnx");
const file = (name: string, bytes: Uint8Array | string) => {
  const p = join(dir, name);
  writeFileSync(p, bytes);
  return p;
};

const hostileExternal = handmadeModel([["add", "Add", ["x", "w"], ["y"]]], {
  initializers: [
    create(TensorProtoSchema, {
      name: "w",
      dataType: DataType.FLOAT,
      dims: [2n],
      dataLocation: TensorProto_DataLocation.EXTERNAL,
      externalData: [create(StringStringEntryProtoSchema, { key: "location", value: "../../x" })],
    }),
  ],
});

const cases: [string, () => string[], number, RegExp][] = [
  ["a truncated protobuf", () => [file("truncated.onnx", readFileSync(GOOD).subarray(0, 100_000))], 1, /truncated\.onnx: not a valid ONNX protobuf: truncated: a field of \d+ bytes runs past the end/],
  ["a text file", () => [file("notes.onnx", "these are my notes, not a model\n")], 1, /notes\.onnx: not an ONNX model \(a text file; a \.pipe file goes to pipec check \/ compile \/ run\)$/],
  ["a graph with a cycle", () => [file("cycle.onnx", handmadeModel(cycle))], 1, /cycle\.onnx: graph 'handmade' has a cycle: 'add' \(Add\) -> 'relu' \(Relu\) -> 'add' \(Add\)$/],
  ["an undefined input", () => [file("undef.onnx", handmadeModel([["r", "Relu", ["nowhere"], ["y"]]]))], 1, /undef\.onnx: node 'r' \(Relu\) reads 'nowhere', which no node, graph input or initializer defines$/],
  ["an external data location ../../x in the model", () => [file("hostile.onnx", hostileExternal)], 1, /hostile\.onnx: tensor 'w': external data location '\.\.\/\.\.\/x' escapes the model's folder; refused$/],
  ["an external data location ../../x on the command line", () => [GOOD, "--external-data", "../../x"], 1, /^pipec: external data location '\.\.\/\.\.\/x' must be a relative path inside the output's folder$/],
  ["a missing file", () => [join(dir, "missing.onnx")], 1, /missing\.onnx: no such file$/],
  ["an unknown pass name", () => [GOOD, "--passes", "dce,dse"], 1, /^pipec: unknown pass 'dse' \(did you mean 'dce'\?\)$/],
  ["a malformed pipeline", () => [GOOD, "--passes", "dce(top_k"], 1, /^pipec: --passes:10: expected '=' after option 'top_k' in 'dce\(top_k'$/],
  ["an unknown option", () => [GOOD, "--passes=dce", "--verify-eahc"], 2, /^pipec: unknown option '--verify-eahc' for 'pipec opt'/],
  ["the input as the output", () => [GOOD, "-o", GOOD], 2, /^pipec: refusing to overwrite the input '.*model\.onnx': give -o another path$/],
];

function expectOneLine(r: CliResult, code: number, message: RegExp): void {
  expect(r.code).toBe(code);
  expect(r.out).toBe("");
  expect(r.err.endsWith("\n")).toBe(true);
  const lines = r.err.trimEnd().split("\n");
  expect(lines, r.err).toHaveLength(1);
  expect(lines[0]).toMatch(/^pipec: /);
  expect(lines[0]).toMatch(message);
}

describe("pipec opt on bad input", () => {
  it.each(cases)("%s: one line, exit code, no output", async (_, args, code, message) => {
    const output = join(dir, "out.onnx");
    const argv = args();
    const r = await pipec("opt", ...(argv.includes("-o") ? argv : [...argv, "-o", output]));
    expectOneLine(r, code, message);
    expect(existsSync(output)).toBe(false);
  });

  it("inspect and ir report bad input the same way", async () => {
    const text = file("text.onnx", "not a model");
    expectOneLine(await pipec("inspect", text), 1, /text\.onnx: not an ONNX model \(a text file/);
    expectOneLine(await pipec("ir", join(dir, "gone.onnx")), 1, /gone\.onnx: no such file$/);
  });

  it("exits 2 with one line for usage errors", async () => {
    expectOneLine(await pipec("frobnicate"), 2, /^pipec: unknown command 'frobnicate' \(see pipec --help\)$/);
    expectOneLine(await pipec("opt", GOOD), 2, /^pipec: pipec opt needs -o <out\.onnx>/);
    expectOneLine(await pipec("ir", "--weights", "all", GOOD), 2, /^pipec: --weights must be one of shape-only, hash, values, got 'all'$/);
    expectOneLine(await pipec("inspect", GOOD, GOOD), 2, /^pipec: pipec inspect takes a model file, got 2 arguments: /);
  });

  it("an output that cannot be created: one line naming it, before any work", async () => {
    const blocker = file("plain-file", "in the way");
    expectOneLine(await pipec("opt", GOOD, "-o", join(blocker, "out.onnx")), 1, /^pipec: cannot write '.*plain-file\/out\.onnx': '.*plain-file' is a file, not a folder$/);
    expectOneLine(await pipec("opt", GOOD, "-o", dir), 2, /^pipec: refusing to write '.*': it is a folder; give -o a file path$/);
  });

  it("an internal error asks for a report, with the stack only under --debug", () => {
    const capture = () => {
      const lines: string[] = [];
      return { lines, io: { out: (t: string) => void lines.push(t), err: (t: string) => void lines.push(t) } };
    };
    const plain = capture();
    expect(reportError(new TypeError("x is undefined"), false, plain.io)).toBe(70);
    expect(plain.lines).toEqual(["pipec: internal error: x is undefined (this is a bug in pipec: please report it; --debug shows the stack)\n"]);
    const debug = capture();
    expect(reportError(new TypeError("x is undefined"), true, debug.io)).toBe(70);
    expect(debug.lines.join("")).toMatch(/please report it\)\nTypeError: x is undefined\n +at /);
  });

  it("as a real process: exit status 1, one line on stderr, no stack", () => {
    const output = join(dir, "process-out.onnx");
    const r = pipecProcess("opt", file("cycle2.onnx", handmadeModel(cycle)), "-o", output);
    expectOneLine(r, 1, /cycle2\.onnx: graph 'handmade' has a cycle/);
    expect(existsSync(output)).toBe(false);
  });
});
