import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { optimize } from "../compiler/api.ts";
import { PipecError } from "../graph/errors.ts";
import { Builder } from "../graph/ir/builder.ts";
import { DataType } from "../graph/ir/dtype.ts";
import { Graph } from "../graph/ir/graph.ts";
import { Model } from "../graph/ir/model.ts";
import { printModel } from "../graph/ir/text/printer.ts";
import { tensorType } from "../graph/ir/types.ts";
import { loadModel, loadModelFromBytes } from "../graph/onnx/load.ts";
import { saveModel } from "../graph/onnx/save.ts";
import { PassFailure, runPipeline, type Instrumentation } from "../graph/pass-manager/manager.ts";
import type { Pass } from "../graph/pass-manager/pass.ts";
import { formatPipeline, parsePipeline } from "../graph/pass-manager/pipeline.ts";
import { TOPOLOGICALLY_SORTED } from "../graph/pass-manager/properties.ts";
import { PassRegistry } from "../graph/pass-manager/registry.ts";
import { defaultRegistry } from "../compiler/methods/registry.ts";
import { handmadeModel, reversedChain } from "./helpers/handmade-models.ts";
import { tempDir } from "./helpers/tmp.ts";

const F = DataType.FLOAT;

/** y = Relu(x), plus a dead Abs(x) and a duplicate Relu(x) feeding it. */
function smallModel(): Model {
  const model = new Model();
  const b = new Builder(model.graph);
  const x = b.input("x", F, [2]);
  b.output(b.op.Relu(x), "y", tensorType(F, [2]));
  b.op.Abs(b.op.Relu(x));
  return model;
}

/** Real passes with behaviour a test can steer: they count, crash, or break the graph. */
function testRegistry(): PassRegistry {
  const pass = (p: Partial<Pass> & Pick<Pass, "name" | "run">): Pass => ({ description: `test pass ${p.name}`, ...p });
  return defaultRegistry()
    .register({
      name: "scale",
      options: { factor: { type: "number", description: "multiplier", default: 1 }, tag: { type: "string", description: "label" } },
      create: () => pass({ name: "scale", run: (_, ctx) => ({ changed: false, stats: { factor: Number(ctx.options.factor) } }) }),
    })
    .register({ name: "boom", create: () => pass({ name: "boom", run: () => { throw new TypeError("cannot read 'x' of undefined"); } }) })
    .register({
      name: "break-graph",
      create: () =>
        pass({
          name: "break-graph",
          run: (m) => {
            new Builder(m.graph).op.Neg(new Graph("elsewhere").addInput("ghost", F, [2]));
            return { changed: true };
          },
        }),
    })
    .register({ name: "needs-fused", create: () => pass({ name: "needs-fused", requires: ["attention-fused"], run: () => ({ changed: false }) }) })
    .register({ name: "fuse", create: () => pass({ name: "fuse", guarantees: ["attention-fused"], run: () => ({ changed: true }) }) })
    .register({ name: "needs-sorted", create: () => pass({ name: "needs-sorted", requires: [TOPOLOGICALLY_SORTED], run: () => ({ changed: false }) }) });
}

describe("parsePipeline", () => {
  it("reads names and options, ignoring whitespace", () => {
    expect(parsePipeline(" dce , tidal(top_k=128, mode = fast),cse")).toEqual([
      { name: "dce", options: {}, column: 2 },
      { name: "tidal", options: { top_k: "128", mode: "fast" }, column: 8 },
      { name: "cse", options: {}, column: 38 },
    ]);
    expect(parsePipeline("")).toEqual([]);
  });

  it("formats back to text it reads the same", () => {
    const text = "dce,tidal(top_k=128,mode=fast),cse";
    expect(formatPipeline(parsePipeline(text))).toBe(text);
  });

  it.each([
    ["dce,,cse", "--passes:5: expected a pass name in 'dce,,cse'"],
    ["dce(k", "--passes:6: expected '=' after option 'k' in 'dce(k'"],
    ["dce(k=1", "--passes:7: missing ')' after the options of 'dce' in 'dce(k=1'"],
    ["dce(k=)", "--passes:7: option 'k' has no value in 'dce(k=)'"],
    ["dce cse", "--passes:5: expected ',' between passes in 'dce cse'"],
  ])("rejects %j with the column", (text, message) => {
    const e = catchError(() => parsePipeline(text));
    expect(e).toBeInstanceOf(PipecError);
    expect((e as PipecError).format()).toBe(message);
  });
});

describe("PassRegistry", () => {
  const registry = testRegistry();

  it("suggests the closest name for an unknown pass", () => {
    expect(() => registry.resolve(parsePipeline("dse"))).toThrow("unknown pass 'dse' (did you mean 'dce'?)");
    expect(() => registry.resolve(parsePipeline("frobnicate"))).toThrow(/^unknown pass 'frobnicate'$/);
  });

  it("converts options to their declared types and fills defaults", () => {
    const [withFactor, defaults] = registry.resolve(parsePipeline("scale(factor=2.5,tag=a),scale"));
    expect(withFactor!.options).toEqual({ factor: 2.5, tag: "a" });
    expect(defaults!.options).toEqual({ factor: 1 });
  });

  it("makes a pass from typed option values without reading text, and refuses a value of another type", () => {
    const made = registry.make("scale", { factor: 2.5 });
    expect(made.options).toEqual({ factor: 2.5 });
    expect(made.step).toEqual({ name: "scale", options: { factor: "2.5" } });
    expect(registry.make("scale", {}).options).toEqual({ factor: 1 });
    expect(() => registry.make("scale", { factor: "2.5" })).toThrow("pass 'scale': option 'factor' is declared number, but was given \"2.5\"");
    expect(() => registry.make("scale", { factr: 2 })).toThrow("pass 'scale' has no option 'factr' (did you mean 'factor'?)");
  });

  it.each([
    ["scale(factr=2)", "pass 'scale' has no option 'factr' (did you mean 'factor'?)"],
    ["scale(zzz=2)", "pass 'scale' has no option 'zzz' (it takes factor, tag)"],
    ["dce(x=1)", "pass 'dce' has no option 'x' (it takes none)"],
    ["scale(factor=big)", "pass 'scale': option 'factor' must be a number, got 'big'"],
  ])("rejects %s", (text, message) => {
    expect(() => registry.resolve(parsePipeline(text))).toThrow(message);
  });
});

describe("runPipeline", () => {
  const registry = testRegistry();
  const run = (model: Model, text: string, instr: Instrumentation = {}, initial: string[] = []) => runPipeline(model, registry.resolve(parsePipeline(text)), instr, initial);

  it("runs passes in order and records what each did", () => {
    const records = run(smallModel(), "cse,dce,scale(factor=3)");
    expect(records.map(({ name, changed, stats }) => ({ name, changed, stats }))).toEqual([
      { name: "cse", changed: true, stats: { "nodes-merged": 1, "initializers-merged": 0 } },
      { name: "dce", changed: true, stats: { "nodes-removed": 1, "initializers-removed": 0, "value-info-removed": 0 } },
      { name: "scale", changed: false, stats: { factor: 3 } },
    ]);
    expect(records.every((r) => r.ms >= 0)).toBe(true);
  });

  it("refuses a pipeline whose pass requires what no earlier pass guarantees", () => {
    expect(() => run(smallModel(), "needs-fused")).toThrow("pass 'needs-fused' requires 'attention-fused', which no earlier pass guarantees");
    expect(() => run(smallModel(), "fuse,needs-fused")).not.toThrow();
    // dce does not preserve 'attention-fused', so a change in between loses it
    expect(() => run(smallModel(), "fuse,dce,needs-fused")).toThrow(/requires 'attention-fused'/);
  });

  it("checks a checkable requirement on the model itself", () => {
    const unsorted = () => loadModelFromBytes(handmadeModel(reversedChain));
    expect(() => run(unsorted(), "needs-sorted")).toThrow("pass 'needs-sorted' requires 'topologically-sorted', which does not hold here");
    expect(() => run(unsorted(), "toposort,needs-sorted")).not.toThrow();
    expect(() => run(smallModel(), "needs-sorted")).not.toThrow();
  });

  it("prints the IR after the passes asked for", () => {
    const printed: string[] = [];
    const instr = { print: (m: Model) => `${m.graph.nodeCount} nodes`, emit: (t: string) => void printed.push(t) };
    run(smallModel(), "scale,cse,dce", { ...instr, printIrAfter: ["cse"] });
    run(smallModel(), "scale,cse,dce", { ...instr, printIrAfterChange: true });
    run(smallModel(), "scale,cse", { ...instr, printIrAfterAll: true });
    expect(printed).toEqual([
      "// ----- IR after cse (#2) -----\n2 nodes\n",
      "// ----- IR after cse (#2) -----\n2 nodes\n",
      "// ----- IR after dce (#3) -----\n1 nodes\n",
      "// ----- IR after scale (#1, unchanged) -----\n3 nodes\n",
      "// ----- IR after cse (#2) -----\n2 nodes\n",
    ]);
  });

  it("refuses to print after a pass the pipeline does not run", () => {
    expect(() => run(smallModel(), "cse,dce", { print: printModel, printIrAfter: ["dse"] })).toThrow("--print-ir-after names 'dse', which is not in the pipeline (did you mean 'dce'?)");
  });

  it("dumps numbered files of the IR before and after every pass", () => {
    const dir = join(tempDir(), "dumps");
    const model = smallModel();
    run(model, "cse,dce", { print: printModel, dumpDir: dir });
    expect(readdirSync(dir).sort()).toEqual(["00-input.txt", "01-cse.txt", "02-dce.txt"]);
    expect(readFileSync(join(dir, "02-dce.txt"), "utf8")).toBe(printModel(model));
    expect(readFileSync(join(dir, "00-input.txt"), "utf8")).toContain("Abs");
  });

  it("names the pass that broke the model under --verify-each", () => {
    const failures: string[] = [];
    const e = catchError(() => run(smallModel(), "dce,break-graph,cse", { verifyEach: true, onFailure: (f) => (failures.push(`${f.pass}#${f.index} in ${f.pipeline}`), "reproducer: here") }));
    expect(e).toBeInstanceOf(PassFailure);
    expect((e as Error).message).toBe("pass 'break-graph' produced an invalid model: graph 'main': Neg input 0 reads 'ghost', which is not defined in scope; reproducer: here");
    expect(failures).toEqual(["break-graph#1 in dce,break-graph,cse"]);
  });

  it("turns a crash into a PassFailure naming the pass, with the original error as cause", () => {
    const e = catchError(() => run(smallModel(), "dce,boom"));
    expect(e).toBeInstanceOf(PassFailure);
    expect((e as PassFailure).message).toBe("pass 'boom' crashed: cannot read 'x' of undefined");
    expect((e as PassFailure).cause).toBeInstanceOf(TypeError);
  });
});

describe("optimize (the API behind pipec opt)", () => {
  it("writes a reproducer (input model + pipeline) when a pass crashes, and no output", () => {
    const dir = tempDir();
    const input = join(dir, "in.onnx");
    saveModel(smallModel(), input);
    const output = join(dir, "out.onnx");
    const e = catchError(() => optimize({ input, output, passes: "cse, boom", registry: testRegistry() }));
    expect(e).toBeInstanceOf(PassFailure);
    expect((e as Error).message).toBe(`pass 'boom' crashed: cannot read 'x' of undefined; reproducer: pipec opt ${output}.reproducer.onnx -o ${join(dir, "out.onnx")} --passes 'cse,boom'`);
    expect(existsSync(output)).toBe(false);
    expect(readFileSync(`${output}.reproducer.pipeline`, "utf8")).toBe("cse,boom\n");
    expect(printModel(loadModel(`${output}.reproducer.onnx`))).toBe(printModel(loadModel(input)));
  });
});

function catchError(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error("expected an error");
}
