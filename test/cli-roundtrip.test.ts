// Acceptance: `pipec opt in.onnx -o out.onnx` without passes gives back the same model: the
// decoded protobuf equals the input's, onnxruntime computes the same bits, and saving the same
// input twice gives byte-identical files.
import { equals, fromBinary } from "@bufbuild/protobuf";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ModelProtoSchema } from "../graph/onnx/generated/onnx_pb.ts";
import { loadModelFromBytes } from "../graph/onnx/load.ts";
import { saveModel } from "../graph/onnx/save.ts";
import { HAVE_SHARED, SHARED_FIXTURES, sharedOnnxFiles, SKIP_SHARED_REASON } from "./helpers/fixtures.ts";
import { handmadeModel, matmulIfModel, reversedChain } from "./helpers/handmade-models.ts";
import { expectBitEqual, runOrt } from "./helpers/ort-parity.ts";
import { pipec } from "./helpers/run-cli.ts";
import { tempDir } from "./helpers/tmp.ts";

const dir = tempDir();
const decode = (path: string) => fromBinary(ModelProtoSchema, readFileSync(path));

async function expectRoundTrip(input: string, name: string): Promise<void> {
  const out1 = join(dir, name, "once.onnx");
  const out2 = join(dir, name, "twice.onnx");
  for (const out of [out1, out2]) {
    const r = await pipec("opt", input, "-o", out);
    expect(r, r.err).toMatchObject({ code: 0, err: "" });
  }
  expect(equals(ModelProtoSchema, decode(out1), decode(input)), "decoded protobuf differs from the input's").toBe(true);
  expect(Buffer.compare(readFileSync(out1), readFileSync(out2)), "two saves of the same input differ").toBe(0);
  expectBitEqual(await runOrt(out1), await runOrt(input));
}

describe("pipec opt round trip", () => {
  it("a model built with the IR: inline weights and an If subgraph", async () => {
    const input = join(dir, "built.onnx");
    saveModel(matmulIfModel(), input);
    await expectRoundTrip(input, "built");
  });

  it("the same model with external data: the data file is cloned or copied whole, not rewritten", async () => {
    const input = join(dir, "external", "model.onnx");
    saveModel(matmulIfModel(), input, { weights: { location: "model.weights", threshold: 0 } });
    await expectRoundTrip(input, "external");
    const r = await pipec("opt", input, "-o", join(dir, "external-out", "m.onnx"));
    expect(r.out).toMatch(/external data model\.weights: (cloned|copied) \(/);
  });

  it("moves weights to a new external file with --external-data, computing the same outputs", async () => {
    const input = join(dir, "to-external.onnx");
    saveModel(matmulIfModel(), input);
    const out = join(dir, "to-external-out", "m.onnx");
    const r = await pipec("opt", input, "-o", out, "--external-data", "m.bin", "--external-threshold", "64");
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/external data m\.bin: written \(/);
    const summary = JSON.parse((await pipec("inspect", "--json", out)).out);
    expect(summary.initializers).toEqual({ count: 2, bytes: 1088, inlineBytes: 0, externalBytes: 1088 });
    expectBitEqual(await runOrt(out), await runOrt(input));
  });

  it("sorts a model whose nodes are out of order, and says so", async () => {
    const input = join(dir, "reversed.onnx");
    saveModel(loadModelFromBytes(handmadeModel(reversedChain)), input);
    const out = join(dir, "sorted.onnx");
    const r = await pipec("opt", input, "-o", out);
    expect(r.out).toContain("the input was not in topological order and was sorted");
    expect(decode(out).graph!.node.map((n) => n.name)).toEqual(["abs", "relu", "neg"]);
    expectBitEqual(await runOrt(out), await runOrt(handmadeModel([...reversedChain].reverse())));
  });

  const reference = join(import.meta.dirname, "fixtures", "reference");
  const exports = readdirSync(reference).filter((name) => existsSync(join(reference, name, "model.onnx")));
  it.each(exports)("reference export %s", async (name) => {
    await expectRoundTrip(join(reference, name, "model.onnx"), `reference-${name}`);
  });

  describe.skipIf(!HAVE_SHARED)(`shared fixtures (${HAVE_SHARED ? "present" : SKIP_SHARED_REASON})`, () => {
    it.each(sharedOnnxFiles())("%s", async (file) => {
      await expectRoundTrip(join(SHARED_FIXTURES, file), `shared-${file.replaceAll("/", "-")}`);
    });
  });
});

describe("pipec opt --passes dce,cse on real models", () => {
  const reference = join(import.meta.dirname, "fixtures", "reference");
  // Several of these have duplicate constants and subexpressions, so cse really merges here.
  const models: [string, string][] = [
    ...readdirSync(reference).filter((name) => existsSync(join(reference, name, "model.onnx"))).map((name): [string, string] => [name, join(reference, name, "model.onnx")]),
    ...sharedOnnxFiles().map((file): [string, string] => [file, join(SHARED_FIXTURES, file)]),
  ];
  it.each(models)("%s: verifies after each pass and computes the same bits", async (name, input) => {
    const out = join(dir, "optimized", `${name.replaceAll("/", "-")}.onnx`);
    const r = await pipec("opt", input, "-o", out, "--passes", "dce,cse", "--verify-each");
    expect(r, r.err).toMatchObject({ code: 0, err: "" });
    expectBitEqual(await runOrt(out), await runOrt(input));
  });
});

