import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { writeDirAtomically } from "../compiler/pipeline/atomic-dir.ts";
import { compileFile, compileSource } from "../compiler/pipeline/compile.ts";
import { greedyReference } from "./helpers/reference-loop.ts";
import { tempDir } from "./helpers/tmp.ts";

const ROOT = resolve(import.meta.dirname, "..");
const HELLO = join(ROOT, "examples/hello.pipe");
const LLAMA = join(ROOT, "test/fixtures/reference/llama-dynamo/model.onnx");
const EXPECTED = JSON.parse(readFileSync(join(ROOT, "test/fixtures/reference/llama-dynamo/expected.json"), "utf8")) as { prompts: { input_ids: number[]; greedy: number[] }[] };

/** Every file under `dir` with its bytes, by relative path. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, prefix: string) => {
    for (const name of readdirSync(d, { withFileTypes: true })) {
      if (name.isDirectory()) walk(join(d, name.name), `${prefix}${name.name}/`);
      else out[`${prefix}${name.name}`] = createHash("sha256").update(readFileSync(join(d, name.name))).digest("hex");
    }
  };
  walk(dir, "");
  return out;
}

describe("pipec compile", () => {
  const tmp = tempDir("pipec-compile-");

  it("writes the model, driver, pipeline IR and manifest, byte-identical across compiles", async () => {
    const [a, b] = [join(tmp, "a"), join(tmp, "b")];
    expect((await compileFile(HELLO, { outDir: a })).outDir).toBe(a);
    expect((await compileFile(HELLO, { outDir: b })).outDir).toBe(b);
    const files = snapshot(a);
    expect(Object.keys(files).sort()).toEqual([".pipec-output", "driver.ts", "manifest.json", "models/llm/model.onnx", "package.json", "pipeline.ir"]);
    expect(snapshot(b)).toEqual(files);
  });

  it("records input hashes, passes, lossy requests and versions in the manifest", async () => {
    const out = join(tmp, "manifest");
    await compileFile(HELLO, { outDir: out });
    const manifest = JSON.parse(readFileSync(join(out, "manifest.json"), "utf8"));
    expect(manifest.inputs[1]).toEqual({ role: "model", name: "llm", path: "../test/fixtures/reference/llama-dynamo/model.onnx", sha256: createHash("sha256").update(readFileSync(LLAMA)).digest("hex") });
    expect(manifest.passes).toEqual([]);
    expect(manifest.lossy).toEqual([]);
    expect(manifest.stages[0]).toMatchObject({ name: "decode", sampling: { method: "greedy", lossy: false, level: "runtime" }, maxTokens: 24 });
    expect(manifest.versions.pipec).toBe("0.1.0");
    expect(readFileSync(join(out, "pipeline.ir"), "utf8")).toContain('model llm = onnx("../test/fixtures/reference/llama-dynamo/model.onnx") {\n    layers: 2\n    kv_heads: 2\n    head_dim: 16\n    vocab: 384');
  });

  it("writes a model that decodes exactly like the input in onnxruntime", async () => {
    const out = join(tmp, "ort");
    await compileFile(HELLO, { outDir: out });
    const { input_ids, greedy } = EXPECTED.prompts[0]!;
    expect(await greedyReference(join(out, "models/llm/model.onnx"), input_ids, 8)).toEqual(greedy.slice(0, 8));
  });

  it("leaves an existing output folder untouched when the source has errors", async () => {
    const out = join(tmp, "kept");
    await compileFile(HELLO, { outDir: out });
    writeFileSync(join(out, "marker"), "mine");
    const before = snapshot(out);
    const bad = readFileSync(HELLO, "utf8").replace("sampling: greedy", "sampling: gready");
    const result = await compileSource(bad, HELLO, { outDir: out });
    expect(result.outDir).toBeUndefined();
    expect(result.diagnostics.map((d) => `${d.span?.line}:${d.span?.column}: ${d.message}`)).toEqual(["10:15: unknown sampling method 'gready' (did you mean 'greedy'?)"]);
    expect(snapshot(out)).toEqual(before);
    expect(readdirSync(tmp).filter((n) => n.includes(".pipec-"))).toEqual([]);
  });

  it("creates no output folder for a file with errors", async () => {
    const out = join(tmp, "never");
    const result = await compileSource("pipeline p {\n  model m = onnx(\"missing.onnx\")\n}\n", HELLO, { outDir: out });
    expect(result.diagnostics.length).toBeGreaterThan(0);
    expect(existsSync(out)).toBe(false);
  });

  it("removes the partial folder when writing fails", async () => {
    const out = join(tmp, "partial");
    await expect(
      writeDirAtomically(out, (dir) => {
        writeFileSync(join(dir, "half"), "x");
        throw new Error("disk full");
      }),
    ).rejects.toThrow("disk full");
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(tmp).filter((n) => n.includes(".pipec-"))).toEqual([]);
  });
});
