// Every user mistake of issue 14 is a user error: one line, exit 1 or 2, never "a bug in pipec";
// and run and generate speak one command-line language.
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { DataType } from "../graph/ir/dtype.ts";
import { AttributeProto_AttributeType, AttributeProtoSchema, ModelProtoSchema, TensorProtoSchema } from "../graph/onnx/generated/onnx_pb.ts";
import { gpt2Config, writeZooModel } from "../graph/zoo/index.ts";
import { handmadeModel } from "./helpers/handmade-models.ts";
import { pipec, type CliResult } from "./helpers/run-cli.ts";
import { tempDir } from "./helpers/tmp.ts";

const dir = tempDir("pipec-user-errors-");
// vocab 50, 16 positions; the copy without config.json leaves the graph's wpe table as the only word on positions.
const { modelPath: MODEL } = writeZooModel(gpt2Config({ layers: 1, hidden: 32, heads: 2, vocabSize: 50, maxPositions: 16 }), join(dir, "gpt2"));
const BARE = join(dir, "bare", "model.onnx");
mkdirSync(join(dir, "bare"));
copyFileSync(MODEL, BARE);
const PIPE = join(dir, "ids.pipe");
writeFileSync(PIPE, `pipeline ids {\n  model llm = onnx(${JSON.stringify(MODEL)})\n  tokenizer tok = ids\n  stage decode = generate(llm, tok) {\n    max_tokens: 3\n    device: cpu\n  }\n}\n`);
const fromBinaryModel = (bytes: Uint8Array) => fromBinary(ModelProtoSchema, bytes);
const ids = (n: number) => Array.from({ length: n }, (_, i) => i % 50).join(",");

/** One line on stderr, starting `pipec: `, no stack, nothing on stdout. */
function expectOneLine(r: CliResult, code: number, message: RegExp): void {
  expect({ code: r.code, out: r.out }, r.err).toEqual({ code, out: "" });
  const lines = r.err.trimEnd().split("\n").filter((l) => !l.startsWith("pipec: no GPU provider loaded"));
  expect(lines, r.err).toHaveLength(1);
  expect(lines[0]).toMatch(/^pipec: /);
  expect(lines[0]).not.toMatch(/bug in pipec|\x1b|\.cc:\d+/);
  expect(lines[0]).toMatch(message);
}

describe("user mistakes are user errors", () => {
  it("a model given where a .pipe file is expected: 'not a .pipe file' before any parsing", async () => {
    expectOneLine(await pipec("check", MODEL), 1, /model\.onnx: not a \.pipe file \(an ONNX model/);
    const out = join(dir, "never");
    expectOneLine(await pipec("compile", MODEL, "-o", out), 1, /not a \.pipe file/);
    expect(existsSync(out)).toBe(false);
    const random = join(dir, "random.pipe");
    writeFileSync(random, Uint8Array.from({ length: 3000 }, (_, i) => (i * 7919 + 13) % 256));
    expectOneLine(await pipec("check", random), 1, /random\.pipe: not a \.pipe file \(binary data, not text\)$/);
  });

  it("a .pipe given where a model is expected: 'not an ONNX model'", async () => {
    expectOneLine(await pipec("inspect", PIPE), 1, /ids\.pipe: not an ONNX model \(a text file/);
    expectOneLine(await pipec("generate", PIPE, "--ids", "1"), 1, /ids\.pipe: not an ONNX model/);
  });

  it("errors are capped at 20, then one line counts the rest", async () => {
    const text = join(dir, "garbage.pipe");
    writeFileSync(text, "@@ ##\n".repeat(500));
    const r = await pipec("check", text);
    expect(r.code).toBe(1);
    expect(r.err.match(/^\S+:\d+:\d+: error: /gm)).toHaveLength(20);
    expect(r.err).toMatch(/garbage\.pipe: and \d+ more problems\n/);
    expect(r.err.split("\n").length).toBeLessThan(70);
  });

  it("token ids outside the vocabulary, checked before onnxruntime runs", async () => {
    expectOneLine(await pipec("generate", MODEL, "--ids", "1,2,99", "--device", "cpu"), 1, /^pipec: token id 99 is outside the model's vocabulary \(ids 0 to 49\)$/);
    expectOneLine(await pipec("run", PIPE, "--ids", "1,50"), 1, /token id 50 is outside the model's vocabulary/);
  });

  it("a prompt past the model's positions, from config.json or else from the graph's position table", async () => {
    expectOneLine(await pipec("generate", MODEL, "--ids", ids(20), "--device", "cpu"), 1, /prompt of 20 tokens exceeds the model's 16 positions/);
    expectOneLine(await pipec("generate", BARE, "--ids", ids(20), "--device", "cpu"), 1, /prompt of 20 tokens exceeds the model's 16 positions/);
    // And generation stops at the last position instead of running onnxruntime past it: 10 + 6
    // tokens fill the 16 positions, and the logits of the last give a 7th.
    const r = await pipec("generate", BARE, "--ids", ids(10), "--max-tokens", "30", "--device", "cpu", "--json");
    expect(JSON.parse(r.out)).toMatchObject({ finishReason: "context-full", tokens: expect.any(Array) });
    expect(JSON.parse(r.out).tokens).toHaveLength(7);
  });

  it("a compiled pipeline carries the graph's limit into its driver", async () => {
    const pipe = join(dir, "bare.pipe");
    writeFileSync(pipe, readFileSync(PIPE, "utf8").replace(JSON.stringify(MODEL), JSON.stringify(BARE)));
    const out = join(dir, "bare-compiled");
    expect((await pipec("compile", pipe, "-o", out)).code).toBe(0);
    expect(readFileSync(join(out, "driver.ts"), "utf8")).toContain("maxPositions: 16");
    expect(readFileSync(join(out, "pipeline.ir"), "utf8")).toContain("positions: 16");
    expectOneLine(await pipec("run", pipe, "--ids", ids(20)), 1, /prompt of 20 tokens exceeds the model's 16 positions/);
  });

  it("an empty model file: 'the file is empty' from generate as from inspect", async () => {
    const empty = join(dir, "empty.onnx");
    writeFileSync(empty, "");
    expectOneLine(await pipec("generate", empty, "--ids", "1"), 1, /empty\.onnx: the file is empty, not an ONNX model$/);
    expectOneLine(await pipec("inspect", empty), 1, /empty\.onnx: the file is empty, not an ONNX model$/);
  });

  it("negative numbers say the bound instead of 'takes no value'", async () => {
    expectOneLine(await pipec("generate", MODEL, "--ids", "1", "--max-tokens", "-2"), 2, /^pipec: --max-tokens must be >= 1, got -2$/);
    expectOneLine(await pipec("run", PIPE, "--ids", "1", "--threads", "-1"), 2, /^pipec: --threads must be >= 1, got -1$/);
    expectOneLine(await pipec("zoo", "gpt2", "-o", join(dir, "z"), "--layers", "-3"), 2, /^pipec: --layers must be >= 0, got -3$/);
    expectOneLine(await pipec("opt", MODEL, "-o", join(dir, "o.onnx"), "--external-data", "w.bin", "--external-threshold", "-1"), 2, /--external-threshold must be >= 0, got -1$/);
    expectOneLine(await pipec("generate", MODEL, "--ids", "1,-4"), 2, /--ids: a token id must be >= 0, got -4$/);
  });

  it("an option left without its value says so, whether it ends the line or another option follows", async () => {
    expectOneLine(await pipec("opt", MODEL, "-o", join(dir, "o.onnx"), "--passes"), 2, /^pipec: option '--passes' of 'pipec opt' needs a value$/);
    expectOneLine(await pipec("opt", MODEL, "-o", join(dir, "o.onnx"), "--passes", "--timing"), 2, /^pipec: option '--passes' of 'pipec opt' needs a value$/);
    expectOneLine(await pipec("opt", MODEL, "--timing=yes"), 2, /^pipec: option '--timing' of 'pipec opt' takes no value$/);
  });

  it("a destination that cannot be created fails at once", async () => {
    const blocker = join(dir, "a-file");
    writeFileSync(blocker, "x");
    expectOneLine(await pipec("compile", PIPE, "-o", join(blocker, "out")), 1, /cannot write '.*a-file\/out': '.*a-file' is a file, not a folder$/);
    expectOneLine(await pipec("zoo", "gpt2", "-o", blocker), 1, /cannot write '.*a-file': a file of that name exists$/);
    expectOneLine(await pipec("run", PIPE, "--ids", "1", "--cache-dir", join(blocker, "cache")), 1, /is a file, not a folder$/);
  });
});

describe("what the fuzzer found, as user errors", () => {
  const model = (name: string, bytes: Uint8Array) => {
    const path = join(dir, name);
    writeFileSync(path, bytes);
    return path;
  };

  it("brackets nested past 64 levels: one error, not a stack overflow", async () => {
    const deep = join(dir, "deep.pipe");
    writeFileSync(deep, `pipeline x {\n  stage s = generate(llm, tok) {\n    kv: streaming${"(".repeat(5000)}\n  }\n}\n`);
    const r = await pipec("check", deep);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^\S+deep\.pipe:3:\d+: error: brackets nest deeper than 64 levels$/m);
    expect(r.err).not.toMatch(/bug in pipec/);
  });

  it("a .pipe file past 256 KiB is no pipeline", async () => {
    const big = join(dir, "big.pipe");
    writeFileSync(big, `# ${"x".repeat(300 * 1024)}\n`);
    expectOneLine(await pipec("check", big), 1, /big\.pipe: not a \.pipe file \(300 KiB of text; a pipeline is at most 256 KiB\)$/);
  });

  it("a node that reads its own output: inspect reports the cycle", async () => {
    const loop = model("self-loop.onnx", handmadeModel([["loop", "Add", ["x", "a"], ["a"]], ["out", "Identity", ["a"], ["y"]]]));
    expectOneLine(await pipec("inspect", loop), 1, /self-loop\.onnx: graph 'handmade' has a cycle: 'loop' \(Add\) -> 'loop' \(Add\)$/);
  });

  it("tensor data that does not fit its dims, a graph attribute without a graph, an ir_version past 2^53", async () => {
    const short = create(TensorProtoSchema, { name: "w", dataType: DataType.FLOAT, dims: [2n], floatData: [1] });
    expectOneLine(await pipec("ir", model("short.onnx", handmadeModel([["add", "Add", ["x", "w"], ["y"]]], { initializers: [short] }))), 1, /tensor 'w' has 2 elements \(float\[2\]\) but its data holds 1$/);
    const ifModel = (bytes: Uint8Array) => {
      const m = fromBinaryModel(bytes);
      m.graph!.node[0]!.attribute.push(create(AttributeProtoSchema, { name: "then_branch", type: AttributeProto_AttributeType.GRAPH }));
      return toBinary(ModelProtoSchema, m);
    };
    expectOneLine(await pipec("ir", model("no-graph.onnx", ifModel(handmadeModel([["if", "If", ["x"], ["y"]]])))), 1, /attribute 'then_branch' is of type GRAPH but holds no graph$/);
    const future = fromBinaryModel(handmadeModel([["r", "Relu", ["x"], ["y"]]]));
    future.irVersion = 2n ** 63n - 1n;
    expectOneLine(await pipec("opt", model("future.onnx", toBinary(ModelProtoSchema, future)), "-o", join(dir, "future-out.onnx")), 1, /ir_version 9223372036854775807 is no version of ONNX$/);
  });

  it("a name with a newline in it keeps the error on one line", async () => {
    const r = await pipec("inspect", model("newline.onnx", handmadeModel([["r", "Relu", ["no\nwhere"], ["y"]]])));
    expectOneLine(r, 1, /reads 'no\\nwhere', which no node, graph input or initializer defines$/);
  });
});

describe("one command-line language for run and generate", () => {
  it("ids print the same way, the stats line is the same, --json has finishReason on both", async () => {
    const viaRun = await pipec("run", PIPE, "--ids", "1,2,3", "--device", "cpu");
    const viaGenerate = await pipec("generate", MODEL, "--ids", "1,2,3", "--max-tokens", "3", "--device", "cpu");
    expect(viaRun.code).toBe(0);
    expect(viaRun.out).toMatch(/^\d+ \d+ \d+\n$/);
    expect(viaGenerate.out).toBe(viaRun.out);
    const stats = /^3 prompt \+ 3 generated tokens on cpu: prefill .* ms, .* peak KV [\d.]+ KiB; stopped: max-tokens$/;
    expect(viaRun.err.trim()).toMatch(stats);
    expect(viaGenerate.err.trim()).toMatch(stats);
    const runJson = JSON.parse((await pipec("run", PIPE, "--ids", "1,2,3", "--json")).out);
    const generateJson = JSON.parse((await pipec("generate", MODEL, "--ids", "1,2,3", "--max-tokens", "3", "--device", "cpu", "--json")).out);
    expect(Object.keys(runJson)).toEqual(["tokens", "text", "finishReason", "stats"]);
    expect(Object.keys(generateJson)).toEqual(Object.keys(runJson));
    expect(runJson.tokens).toEqual(generateJson.tokens);
  });

  it("run takes generate's --threads, --sampling and --max-tokens, overriding the pipeline", async () => {
    const sampled = async (seed: number) => JSON.parse((await pipec("run", PIPE, "--ids", "1,2,3", "--json", "--threads", "1", "--max-tokens", "5", "--sampling", `sample(temperature: 1.5, seed: ${seed})`)).out);
    const generated = JSON.parse((await pipec("generate", MODEL, "--ids", "1,2,3", "--json", "--device", "cpu", "--max-tokens", "5", "--sampling", "sample(temperature: 1.5, seed: 7)")).out);
    const a = await sampled(7);
    expect(a.tokens).toHaveLength(5);
    expect(a.tokens).toEqual(generated.tokens);
    expect((await pipec("run", PIPE, "--ids", "1", "--stop", "x")).err).toMatch(/--stop needs a tokenizer/);
  });

  it("the device line appears once per process, and only for --device auto", async () => {
    const notices = async (...extra: string[]) => (await pipec("generate", MODEL, "--ids", "1", "--max-tokens", "1", ...extra)).err.split("\n").filter((l) => l.includes("no GPU provider")).length;
    expect(await notices("--device", "cpu")).toBe(0);
    const first = await notices();
    expect(await notices()).toBe(0);
    expect(first).toBeLessThanOrEqual(1);
  });

  it("--json on check, compile, passes, zoo and opt", async () => {
    const check = await pipec("check", PIPE, "--json");
    expect(JSON.parse(check.out)).toEqual({ file: PIPE, ok: true, errors: 0, warnings: 0, diagnostics: [] });
    const bad = join(dir, "bad.pipe");
    writeFileSync(bad, "pipeline x {\n  stage s = generate(nope, tok)\n}\n");
    const failed = JSON.parse((await pipec("check", bad, "--json")).out);
    expect(failed).toMatchObject({ ok: false, diagnostics: expect.arrayContaining([expect.objectContaining({ severity: "error", line: 2 })]) });
    const compiled = JSON.parse((await pipec("compile", PIPE, "-o", join(dir, "compiled"), "--json")).out);
    expect(compiled).toMatchObject({ file: PIPE, ok: true, outDir: join(dir, "compiled"), diagnostics: [] });
    const passes = JSON.parse((await pipec("passes", "--json")).out) as { name: string; description: string; options: Record<string, string> }[];
    expect(passes.find((p) => p.name === "lift-attention")).toMatchObject({ options: { trace: "boolean" } });
    const zoo = JSON.parse((await pipec("zoo", "gpt2", "-o", join(dir, "zoo-json"), "--layers", "1", "--hidden", "16", "--heads", "2", "--vocab", "32", "--json")).out);
    expect(zoo).toMatchObject({ model: join(dir, "zoo-json", "model.onnx"), family: "gpt2", layers: 1, hidden: 16, parameters: expect.any(Number) });
    const opt = JSON.parse((await pipec("opt", MODEL, "-o", join(dir, "opt.onnx"), "--passes", "dce", "--json")).out);
    expect(opt).toMatchObject({ output: join(dir, "opt.onnx"), sorted: false, passes: [{ name: "dce", changed: expect.any(Boolean) }] });
  });

  it("pipec passes fits 100 columns", async () => {
    const { out } = await pipec("passes");
    expect(out.split("\n").filter((l) => l.length > 100)).toEqual([]);
    expect(out).toMatch(/^lift-attention +recognise/m);
  });
});
