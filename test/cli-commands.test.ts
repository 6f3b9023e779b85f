import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { printModel } from "../graph/ir/text/printer.ts";
import { loadModel } from "../graph/onnx/load.ts";
import { saveModel } from "../graph/onnx/save.ts";
import { matmulIfModel } from "./helpers/handmade-models.ts";
import { pipec } from "./helpers/run-cli.ts";
import { tempDir } from "./helpers/tmp.ts";

const dir = tempDir();
const MODEL = join(dir, "model.onnx");
saveModel(matmulIfModel(), MODEL);

describe("pipec inspect", () => {
  it("prints the documented JSON summary", async () => {
    const r = await pipec("inspect", MODEL, "--json");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual({
      path: MODEL,
      irVersion: 10,
      producer: { name: "pipec", version: "" },
      opsets: [{ domain: "", version: 17 }],
      inputs: [
        { name: "x", dtype: "float", shape: ["B", 16] },
        { name: "cond", dtype: "bool", shape: [] },
      ],
      outputs: [{ name: "y", dtype: "float", shape: ["B", 16] }],
      nodeCount: 3,
      subgraphNodeCount: 2,
      ops: { Add: 1, If: 1, MatMul: 1, Neg: 1, Relu: 1 },
      initializers: { count: 2, bytes: 1088, inlineBytes: 1088, externalBytes: 0 },
      externalFiles: [],
      functions: 0,
      attention: { layers: 0, forms: {}, blocks: [], unrecognised: [] },
    });
  });

  it("lists external data files with their size and tensor count", async () => {
    const path = join(dir, "ext", "model.onnx");
    saveModel(matmulIfModel(), path, { weights: { location: "w.bin", threshold: 100, align: 64 } });
    const summary = JSON.parse((await pipec("inspect", "--json", path)).out);
    expect(summary.initializers).toEqual({ count: 2, bytes: 1088, inlineBytes: 64, externalBytes: 1024 });
    expect(summary.externalFiles).toEqual([{ location: "w.bin", bytes: 1024, tensors: 1 }]);
  });

  it("prints a readable summary", async () => {
    const r = await pipec("inspect", MODEL);
    expect(r.out).toContain("    x  float[B,16]\n");
    expect(r.out).toContain("  nodes: 3 (+2 in subgraphs)\n");
    expect(r.out).toContain("  initializers: 2, 1.1 KiB (1.1 KiB inline, 0 B external)\n");
    expect(r.out).toContain("  ops: Add 1, If 1, MatMul 1, Neg 1, Relu 1\n");
  });
});

describe("pipec ir", () => {
  it("prints the model's text form", async () => {
    const r = await pipec("ir", MODEL);
    expect(r.code).toBe(0);
    const text = printModel(loadModel(MODEL));
    expect(r.out).toBe(text.endsWith("\n") ? text : `${text}\n`);
    expect(r.out).toContain("If (cond)");
  });
});

describe("pipec opt instrumentation", () => {
  it("reports timing, dumps numbered files and prints the IR after the passes asked for", async () => {
    const dumps = join(dir, "dumps");
    const out = join(dir, "opt.onnx");
    const r = await pipec("opt", MODEL, "-o", out, "--passes", "cse,dce", "--timing", "--dump-dir", dumps, "--print-ir-after=dce", "--verify-each");
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^wrote .*opt\.onnx \(/);
    expect(r.out).toMatch(/^pass +ms +changed +stats$/m);
    expect(r.out).toMatch(/^cse +[\d.]+ +no +nodes-merged=0 initializers-merged=0$/m);
    expect(r.out).toMatch(/^dce +[\d.]+ +no +nodes-removed=0 initializers-removed=0 value-info-removed=0$/m);
    expect(readdirSync(dumps).sort()).toEqual(["00-input.txt", "01-cse.txt", "02-dce.txt"]);
    expect(readFileSync(join(dumps, "02-dce.txt"), "utf8")).toBe(printModel(loadModel(out)));
    expect(r.err).toBe(`// ----- IR after dce (#2, unchanged) -----\n${printModel(loadModel(out))}\n`);
  });
});

describe("help", () => {
  it.each(["inspect", "ir", "opt", "passes"])("pipec %s --help", async (command) => {
    const r = await pipec(command, "--help");
    expect(r).toMatchObject({ code: 0, err: "" });
    expect(r.out).toMatch(new RegExp(`^usage: pipec ${command}`));
  });

  it("pipec --help lists every command; no arguments is a usage error", async () => {
    const r = await pipec("--help");
    expect(r.code).toBe(0);
    for (const c of ["inspect", "ir", "opt", "passes"]) expect(r.out).toMatch(new RegExp(`^  ${c} +\\S`, "m"));
    expect((await pipec()).code).toBe(2);
    expect((await pipec("--version")).out).toMatch(/^pipec \d+\.\d+\.\d+\n$/);
  });

  it("pipec passes lists the registered passes", async () => {
    const r = await pipec("passes");
    expect(r.out).toMatch(/^dce +remove nodes/m);
    expect(r.out).toMatch(/^cse +merge identical/m);
    expect(r.out).toMatch(/^toposort +order nodes/m);
  });

  it("opt without passes only loads and saves", async () => {
    const r = await pipec("opt", MODEL, "-o", join(dir, "plain.onnx"));
    expect(r).toMatchObject({ code: 0, err: "" });
    expect(readFileSync(join(dir, "plain.onnx"))).toEqual(readFileSync(MODEL));
  });
});
