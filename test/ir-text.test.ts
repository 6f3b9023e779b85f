import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { toBinary } from "@bufbuild/protobuf";
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { isPipecError, PipecError } from "../graph/errors.ts";
import { Builder, DataType, float, Graph, Model, ModelFunction, modelToProto, Tensor } from "../graph/ir/index.ts";
import { ElidedTensor, parseModel, printGraph, printModel } from "../graph/ir/text/index.ts";
import { loadModel, saveModel } from "../graph/onnx/index.ts";
import { ModelProtoSchema } from "../graph/onnx/generated/onnx_pb.ts";
import { seededFeeds } from "./helpers/ort-inputs.ts";
import { fastest } from "./helpers/fastest.ts";

const HERE = dirname(fileURLToPath(import.meta.url));
const GOLDEN = join(HERE, "fixtures", "text");
const FIXTURES = resolve(HERE, "..", "..", "shared", "fixtures");
const GOLDEN_NAMES = ["mlp", "attributes", "control_flow", "functions", "dtypes", "handwritten"];
/** Goldens onnxruntime can run: the parsed model must compute what the .onnx computes. */
const RUNNABLE: Record<string, (s: ort.InferenceSession) => Record<string, ort.Tensor>> = {
  mlp: (s) => seededFeeds(s, 3, { B: 2, S: 3 }),
  control_flow: () => ({
    c: new ort.Tensor("bool", Uint8Array.of(1), []),
    x: new ort.Tensor("float32", Float32Array.of(1.5, -2, 0.25), [3]),
    trips: new ort.Tensor("int64", BigInt64Array.of(3n), []),
  }),
  functions: () => ({ x: new ort.Tensor("float32", Float32Array.of(-1, 0.5, 2, -3), [2, 2]) }),
};

const values = { weights: "values" } as const;

function parseError(text: string): PipecError {
  try {
    parseModel(text, "model.txt");
  } catch (e) {
    if (isPipecError(e)) return e;
    throw e;
  }
  throw new Error("the text parsed without error");
}

async function run(model: string | Uint8Array, feeds: (s: ort.InferenceSession) => Record<string, ort.Tensor>): Promise<Record<string, unknown[]>> {
  const session = typeof model === "string" ? await ort.InferenceSession.create(model) : await ort.InferenceSession.create(model);
  try {
    const out = await session.run(feeds(session));
    return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, [t.dims, Array.from(t.data as ArrayLike<unknown>)]]));
  } finally {
    await session.release();
  }
}

const bytesOf = (m: Model) => toBinary(ModelProtoSchema, modelToProto(m));

describe("text form: goldens written by onnx.printer (tools/make_text_goldens.py)", () => {
  for (const name of GOLDEN_NAMES) {
    const onnxPath = join(GOLDEN, `${name}.onnx`);
    const golden = () => readFileSync(join(GOLDEN, `${name}.txt`), "utf8");

    it(`prints ${name}.onnx exactly as onnx.printer.to_text does`, () => {
      expect(printModel(loadModel(onnxPath), values)).toBe(golden());
    });

    it(`parses ${name}.txt into the model of ${name}.onnx`, async () => {
      const parsed = parseModel(golden(), `${name}.txt`);
      expect(printModel(parsed, values)).toBe(printModel(loadModel(onnxPath), values));
      const feeds = RUNNABLE[name];
      if (feeds) expect(await run(bytesOf(parsed), feeds)).toEqual(await run(onnxPath, feeds));
    });
  }

  it("reads hand-written text (untyped attributes, attributes after inputs, comments) as onnx.parser does", () => {
    const source = readFileSync(join(GOLDEN, "handwritten.source.txt"), "utf8");
    expect(printModel(parseModel(source, "handwritten.source.txt"), values)).toBe(readFileSync(join(GOLDEN, "handwritten.txt"), "utf8"));
  });
});

/** A model built in code with the parts of the syntax the goldens leave out or combine differently. */
function builtModel({ customAttributes = true } = {}): Model {
  const model = new Model({ opsets: { "": 21, "com.microsoft": 1, "pipec.local": 1 } });
  const g = model.graph;
  const b = new Builder(g);
  const x = b.input("x", DataType.FLOAT, ["B", "S", 8]);
  const cond = b.input("cond", DataType.BOOL, []);
  const w = b.constant(DataType.FLOAT, [8, 8], Float32Array.from({ length: 64 }, (_, i) => Math.sin(i) / 3), "w");
  const h = b.op.MatMul(x, w);
  const clipped = b.op.Clip(h, undefined, b.float32(0.75)); // omitted optional input
  const cast = b.op.Cast(clipped, { to: DataType.FLOAT, saturate: 1 });

  const thenBranch = new Graph("then_branch", { parent: g });
  thenBranch.addOutput(b.typed(new Builder(thenBranch).op.Relu(cast), DataType.FLOAT, ["B", "S", 8]));
  const elseBranch = new Graph("else_branch", { parent: g });
  const eb = new Builder(elseBranch);
  elseBranch.addOutput(eb.op.Mul(cast, eb.float32(-1)));
  const chosen = b.node("If", [cond], { attributes: { then_branch: thenBranch, else_branch: elseBranch } }).output();

  const fn = new ModelFunction("Twice", "pipec.local", { opsets: new Map([["", 21]]) });
  const a = fn.body.defineValue("a");
  fn.body.inputs.push(a);
  fn.body.addOutput(new Builder(fn.body).op.Add(a, a));
  model.functions.push(fn);
  const twice = b.domain("pipec.local").Twice(chosen);

  const norm = b.domain("com.microsoft").SkipSimplifiedLayerNormalization(twice, x, b.float32([1, 1, 1, 1, 1, 1, 1, 1]), { epsilon: float(1e-6) });
  b.output(norm, "y", { kind: "tensor", dtype: DataType.FLOAT, shape: ["B", "S", 8] });
  if (customAttributes) {
    // onnxruntime would reject an operator it does not know: only the text tests get this one.
    model.requireOpset("pipec.test", 1);
    b.domain("pipec.test").Annotate(norm, {
      tags: ["pre", "post"],
      weights: [0.5, 2],
      steps: [3, -1],
      note: 'say "hi"',
      table: Tensor.fromArray("table", DataType.INT64, [2], BigInt64Array.of(4n, -5n)),
    });
  }
  return model;
}

describe("text form: print -> parse -> print is a fixed point", () => {
  it("on a built model with an If, a function, symbolic dims, every attribute kind and an empty input", () => {
    const model = builtModel();
    for (const weights of ["shape-only", "hash", "values"] as const) {
      const text = printModel(model, { weights });
      expect(printModel(parseModel(text), { weights })).toBe(text);
    }
    const text = printModel(model, values);
    expect(text).toContain("(float[B,S,8] x, bool cond) => (float[B,S,8] y)");
    expect(text).toContain("Clip (MatMul, \"\", f32)");
    expect(text).toContain("com.microsoft.SkipSimplifiedLayerNormalization <epsilon: float = 1e-06> (Twice, x, f32_2)");
    expect(text).toContain('pipec.test.Annotate <tags: strings = ["pre", "post"], weights: floats = [0.5, 2], steps: ints = [3, -1], note: string = "say \\"hi\\"", table: tensor = int64[2] table {4,-5}> (y)');
    expect(text).toContain("If (cond) <then_branch: graph = then_branch () => (float[B,S,8] Relu) {");
    expect(text).toContain("Twice (a) => (Add)");
  });

  it("and the parsed model computes what the built one does", async () => {
    const model = builtModel({ customAttributes: false });
    const parsed = parseModel(printModel(model, values));
    const feeds = (s: ort.InferenceSession) => seededFeeds(s, 7, { B: 2, S: 3 });
    expect(await run(bytesOf(parsed), feeds)).toEqual(await run(bytesOf(model), feeds));
  });

  it("with names that start like nan and inf, and non-finite float attributes", () => {
    const text = [
      "<\n   ir_version: 10,\n   opset_import: [\"\" : 21]\n>",
      "g (float[N] info, float[N] nan_mask) => (float[N] y) {",
      "   y = Add (info, nan_mask)",
      "   z = Clip <max: float = inf, min: float = -inf, fill: float = nan> (y)",
      "}",
    ].join("\n");
    const model = parseModel(text);
    expect(printModel(model)).toBe(text);
    expect(model.graph.firstNode!.inputs.map((v) => v!.name)).toEqual(["info", "nan_mask"]);
  });

  it("on a graph printed alone", () => {
    const model = builtModel();
    const text = printGraph(model.graph, { weights: "hash" });
    expect(text.startsWith("main (float[B,S,8] x, bool cond) => (float[B,S,8] y) \n   <float[8,8] w = <sha:")).toBe(true);
    expect(text.endsWith("}")).toBe(true);
  });

  describe.skipIf(!existsSync(FIXTURES))("on every model under ../shared/fixtures", () => {
    const models = existsSync(FIXTURES)
      ? readdirSync(FIXTURES, { recursive: true, encoding: "utf8" })
          .filter((f) => f.endsWith(".onnx"))
          .sort()
      : [];
    for (const file of models) {
      it(file, () => {
        const text = printModel(loadModel(join(FIXTURES, file)), { weights: "hash" });
        expect(printModel(parseModel(text, file), { weights: "hash" })).toBe(text);
      });
    }
    const small = "genai-tiny-random-lfm2-fp32/decoder.onnx";
    it.skipIf(!models.includes(small))(`${small} with every weight value, and the parsed model runs the same`, async () => {
      const path = join(FIXTURES, small);
      const text = printModel(loadModel(path), values);
      const parsed = parseModel(text, small);
      expect(printModel(parsed, values)).toBe(text);
      const feeds = (s: ort.InferenceSession) => seededFeeds(s, 5, { batch_size: 1, sequence_length: 3, past_sequence_length: 2, total_sequence_length: 5 });
      expect(await run(bytesOf(parsed), feeds)).toEqual(await run(path, feeds));
    });
  });
});

describe("text form: weights", () => {
  const model = () => loadModel(join(GOLDEN, "mlp.onnx"));

  it("summarises tensors above inlineWeightsUpTo: shape only by default, a content hash on request", () => {
    const m = model();
    const weight = m.graph.initializers.get("onnx::MatMul_1")!.initializer!;
    const shapeOnly = printModel(m, { inlineWeightsUpTo: 4 });
    expect(shapeOnly).toContain('<float[4,3] "onnx::MatMul_1" = <elided>, float[3] "/layer/bias" =  {0.1,-0.25,1e-05}, float lo =  {-0.5}');
    expect(printModel(m, { inlineWeightsUpTo: 4, weights: "hash" })).toContain(`float[4,3] "onnx::MatMul_1" = <sha:${weight.contentHash()}>,`);
    expect(printModel(m)).toContain('float[4,3] "onnx::MatMul_1" =  {-1,'); // 12 elements: under the default 16
  });

  it("reads no tensor bytes in shape-only mode", () => {
    class Unreadable extends Tensor {
      override bytes(): Uint8Array {
        throw new Error("read");
      }
    }
    const m = new Model();
    const b = new Builder(m.graph);
    const v = m.graph.addInitializer(Tensor.fromArray("big", DataType.FLOAT, [100], new Float32Array(100)));
    m.graph.initializers.get(v.name)!.initializer = new Unreadable(v.initializer!.proto, new Uint8Array(400));
    b.output(b.op.Neg(v), "y");
    expect(printModel(m)).toContain("float[100] big = <elided>");
    expect(() => printModel(m, { weights: "hash" })).toThrow("read");
  });

  it("parses summaries into placeholders that print the same and refuse to be saved", () => {
    const text = printModel(model(), { inlineWeightsUpTo: 4, weights: "hash" });
    const parsed = parseModel(text, "mlp.txt");
    const placeholder = parsed.graph.initializers.get("onnx::MatMul_1")!.initializer!;
    expect(placeholder).toBeInstanceOf(ElidedTensor);
    expect(placeholder.dims).toEqual([4, 3]);
    expect(printModel(parsed, { inlineWeightsUpTo: 4, weights: "hash" })).toBe(text);
    const dir = mkdtempSync(join(tmpdir(), "pipec-text-"));
    try {
      expect(() => saveModel(parsed, join(dir, "m.onnx"))).toThrow(/tensor 'onnx::MatMul_1' was parsed from text with its values left out/);
      expect(existsSync(join(dir, "m.onnx"))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("text form: parse errors name file:line:column", () => {
  const header = '<ir_version: 10, opset_import: ["" : 21]>\n';
  const cases: [string, string, string][] = [
    ["a missing ')'", `${header}g (float[N] x => (float[N] y) {\n  y = Relu (x)\n}`, "model.txt:2:15: expected ')' but found '=>'"],
    ["an extra ',' in an input list", `${header}g (float[N] x) => (float[N] y) {\n  y = Add (x,, x)\n}`, "model.txt:3:14: expected a name or a quoted string but found ','"],
    ["a stray character", `${header}g (float x) => (float y) {\n  y = Relu (x) $\n}`, "model.txt:3:16: unexpected character '$'"],
    ["a missing '}'", `${header}g (float x) => (float y) {\n  y = Relu (x)\n`, "model.txt:3:15: expected '}' but found the end of the text"],
    ["an undefined value", `${header}g (float x) => (float y) {\n  y = Add (x,\n     z)\n}`, "model.txt:4:6: Add reads 'z', which no node, graph input or initializer defines"],
    ["an unknown element type", `${header}g (flaot[2] x) => (float y) {\n  y = Relu (x)\n}`, "model.txt:2:4: unknown element type 'flaot'"],
    ["the wrong number of values", `${header}g (float x) => (float y)\n  <float[3] w = {1, 2}>\n{\n  y = Relu (x)\n}`, "model.txt:3:17: tensor 'w' has shape [3] (3 values) but 2 are given"],
    ["a value defined twice", `${header}g (float x) => (float y) {\n  y = Relu (x)\n  y = Neg (x)\n}`, "model.txt:4:3: 'y' is defined a second time (values must be assigned once)"],
    ["an attribute of the wrong type", `${header}g (float x) => (float y) {\n  y = Softmax <axis: int = "last"> (x)\n}`, "model.txt:3:28: attribute 'axis' expects a value of type int but found string"],
  ];
  for (const [what, text, message] of cases) {
    it(`reports ${what}`, () => {
      const e = parseError(text);
      expect(e.format()).toBe(message);
      expect(e.message).not.toContain("\n");
    });
  }
});

describe("text form: performance", () => {
  function chain(n: number): Model {
    const m = new Model();
    let v = m.graph.addInput("x", DataType.FLOAT, ["B", 16]);
    for (let i = 0; i < n; i++) v = m.graph.addNode("Relu", [v]).output();
    m.graph.addOutput(v);
    return m;
  }

  it("prints a 100k-node graph in time linear in its size", () => {
    const small = chain(10_000);
    const large = chain(100_000);
    printModel(small); // warm up the JIT
    const tSmall = fastest(3, () => printModel(small)).ms;
    const { ms: tLarge, result: text } = fastest(3, () => printModel(large));
    expect(text.length).toBeGreaterThan(100_000 * 20);
    // 10x the nodes: linear printing takes ~10x as long, quadratic ~100x.
    expect(tLarge / Math.max(tSmall, 1), `10k nodes: ${tSmall.toFixed(0)} ms, 100k nodes: ${tLarge.toFixed(0)} ms`).toBeLessThan(30);
  });
});
