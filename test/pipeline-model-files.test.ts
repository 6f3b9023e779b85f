import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it, vi } from "vitest";
import * as onnx from "../graph/onnx/index.ts";
import { compileFile } from "../compiler/pipeline/compile.ts";
import { analyzeSource } from "../compiler/pipeline/frontend.ts";
import { ModelFiles } from "../compiler/pipeline/model-facts.ts";
import { tempDir } from "./helpers/tmp.ts";

// The real loadModel, counted: a compile's cost on a large model starts with reading its graph.
vi.mock("../graph/onnx/index.ts", async (importOriginal) => {
  const real = await importOriginal<typeof import("../graph/onnx/index.ts")>();
  return { ...real, loadModel: vi.fn(real.loadModel) };
});

const ROOT = resolve(import.meta.dirname, "..");
const LLAMA = join(ROOT, "test/fixtures/reference/llama-dynamo/model.onnx");
const TIDAL = `pipeline p {
  model llm = onnx(${JSON.stringify(LLAMA)})
  tokenizer tok = ids
  stage decode = generate(llm, tok) {
    attention: tidal(top_k: 25%, full_layers: 0, select_layers: [0])
    max_tokens: 8
  }
}
`;
const loads = () => vi.mocked(onnx.loadModel).mock.calls.filter(([path]) => path === LLAMA).length;

/** Counts the loads `take` could not spare. */
class CountingModelFiles extends ModelFiles {
  freshLoads = 0;
  taken: unknown[] = [];
  override take(path: string) {
    const model = super.take(path);
    this.taken.push(model);
    return model;
  }
}

describe("ModelFiles: each model file is read once for its facts and its passes", () => {
  const tmp = tempDir("pipec-model-files-");

  it("hands the model read for its facts to the first taker only, then loads afresh", () => {
    const files = new ModelFiles();
    expect(files.provider(LLAMA)).toMatchObject({ layers: 2 });
    const first = files.take(LLAMA);
    const second = files.take(LLAMA);
    // Identity, not expect().not.toBe: on models that differ, vitest deep-compares whole graphs for its hint.
    expect(second === first).toBe(false);
    expect(second.graph.nodeCount).toBe(first.graph.nodeCount);
  });

  it("keeps no model whose facts are an error", () => {
    const files = new ModelFiles();
    const missing = join(ROOT, "test/fixtures/no-such-model.onnx");
    expect(files.provider(missing)).toHaveProperty("error");
    expect(() => files.take(missing)).toThrow(/no-such-model/);
  });

  it("placement on shared files runs the passes on the model the checks read, and places as an unshared analysis does", () => {
    const source = TIDAL;
    const file = join(ROOT, "test/fixtures/p.pipe");
    const files = new CountingModelFiles();
    const shared = analyzeSource(source, file, { place: true, models: files });
    const alone = analyzeSource(source, file, { place: true });
    expect(shared.diagnostics.sorted()).toEqual([]);
    expect(files.taken).toHaveLength(1);
    expect(shared.placement!.models[0]!.model === files.taken[0]).toBe(true);
    const stats = (r: typeof shared) => r.placement!.models[0]!.runs.map(({ record }) => [record.name, record.changed, record.stats]);
    expect(stats(shared)).toEqual(stats(alone));
    expect(shared.placement!.models[0]!.model.graph.nodeCount).toBe(alone.placement!.models[0]!.model.graph.nodeCount);
  });

  it("a compile reads its model once: the destination check, the checks and the passes share it", async () => {
    const pipe = join(tmp, "p.pipe");
    writeFileSync(pipe, TIDAL);
    const before = loads();
    const result = await compileFile(pipe, { outDir: join(tmp, "out") });
    expect(result.diagnostics).toEqual([]);
    expect(loads() - before).toBe(1);
  });
});
