import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import type { Diagnostic } from "../dsl/diagnostics.ts";
import { compileFile, compileSource } from "../compiler/pipeline/compile.ts";
import { analyzeFile, analyzeSource } from "../compiler/pipeline/frontend.ts";
import { prepareRun, runCompiled } from "../compiler/pipeline/run.ts";
import { writeOpaqueDecoder } from "./helpers/opaque-decoder.ts";
import { pipec as pipecCli } from "./helpers/run-cli.ts";
import { tempDir } from "./helpers/tmp.ts";

const ROOT = resolve(import.meta.dirname, "..");
const lines = (ds: readonly Diagnostic[]) => ds.map((d) => `${d.span?.line}:${d.span?.column}: ${d.severity}: ${d.message}`);

const pipe = (model: string, settings: string) => `pipeline placed {
  model llm = onnx("${model}")
  tokenizer tok = ids
  stage decode = generate(llm, tok) {
    ${settings}
    max_tokens: 6
  }
}
`;

async function tokens(outDir: string, prompt: number[]): Promise<number[]> {
  for await (const event of runCompiled(outDir, prompt, { device: "cpu" })) if (event.kind === "end") return event.tokens;
  throw new Error("no end event");
}

describe("a request the model cannot take is never silently dropped or half-applied", () => {
  const tmp = tempDir("pipec-placement-");
  const opaque = writeOpaqueDecoder(join(tmp, "opaque"));
  const file = join(tmp, "placed.pipe");

  // Every method carried out on the model's attention, on a decoder whose layers pipec does not recognise as attention.
  const REQUESTS = ["kv: streaming(sinks: 2, window: 8)", "attention: tidal(top_k: 4)", "attention: tokenselect(top_k: 4)", "speculate: recycle", "speculate: self(skip: [1])"];

  it.each(REQUESTS)("%s: an error at the request, from check and compile alike, and no output", async (request) => {
    const source = pipe(opaque, request);
    const checked = analyzeSource(source, file, { place: true });
    const method = request.slice(0, request.search(/\(|$/));
    expect(lines(checked.diagnostics.sorted())).toEqual([`5:${request.indexOf(":") + 7}: error: ${method} cannot be applied: pipec recognises no attention layer in model 'llm'`]);
    const out = join(tmp, `out-${REQUESTS.indexOf(request)}`);
    const compiled = await compileSource(source, file, { outDir: out });
    expect(lines(compiled.diagnostics)).toEqual(lines(checked.diagnostics.sorted()));
    expect(compiled.outDir).toBeUndefined();
    expect(existsSync(out)).toBe(false);
  });

  it.each(REQUESTS)("%s? (optional): a warning, and neither the model nor the driver gets anything of it", async (request) => {
    const out = join(tmp, `optional-${REQUESTS.indexOf(request)}`);
    const result = await compileSource(pipe(opaque, `${request}?`), file, { outDir: out });
    expect(lines(result.diagnostics)).toEqual([`5:${request.indexOf(":") + 7}: warning: ${request.slice(0, request.search(/\(|$/))} is skipped, it cannot be applied: pipec recognises no attention layer in model 'llm' (it is optional)`]);
    const manifest = JSON.parse(readFileSync(join(out, "manifest.json"), "utf8"));
    // Only the stage's own model is written (no self-draft model), untouched.
    expect(Object.keys(manifest.outputs.models)).toEqual(["llm"]);
    expect(manifest.passes).toEqual([]);
    const driver = readFileSync(join(out, "driver.ts"), "utf8");
    expect(driver).not.toMatch(/streaming:|speculate:|draftModel/);
  });

  it("pipec check exits 1 on a request the model cannot take, with the error compile gives", async () => {
    const path = join(tmp, "check.pipe");
    writeFileSync(path, pipe(opaque, "attention: tokenselect(top_k: 4)"));
    const checked = await pipecCli("check", path);
    expect(checked.code).toBe(1);
    expect(checked.err).toContain(`${path}:5:16: error: attention: tokenselect cannot be applied: pipec recognises no attention layer in model 'llm'`);
    writeFileSync(path, pipe(opaque, "attention: tokenselect(top_k: 4)?"));
    expect(await pipecCli("check", path)).toMatchObject({ code: 0, out: `${path}: ok\n` });
  });

  it("an optional request (`?`) the model cannot take is a warning, and nothing of it reaches the model or the runtime", async () => {
    const plain = join(tmp, "plain");
    expect((await compileSource(pipe(opaque, "kv: full"), file, { outDir: plain })).diagnostics).toEqual([]);
    const out = join(tmp, "optional");
    const result = await compileSource(pipe(opaque, "kv: streaming(sinks: 1, window: 2)?"), file, { outDir: out });
    expect(lines(result.diagnostics)).toEqual(["5:9: warning: kv: streaming is skipped, it cannot be applied: pipec recognises no attention layer in model 'llm' (it is optional)"]);
    const manifest = JSON.parse(readFileSync(join(out, "manifest.json"), "utf8"));
    expect(manifest.passes).toEqual([]);
    expect(manifest.stages[0].kv).toMatchObject({ method: "streaming", optional: true, unplaced: true, level: "none" });
    expect(manifest.lossy).toEqual([]);
    expect(readFileSync(join(out, "driver.ts"), "utf8")).not.toContain("streaming");
    expect(readFileSync(join(out, "pipeline.ir"), "utf8")).toContain("kv: streaming(sinks: 1, window: 2)?  # not applied: the model cannot take it");
    // A 2-row window would change these tokens (the model averages every cached row): they are the plain model's.
    const prompt = [3, 1, 4, 1, 5, 9, 2, 6];
    expect(await tokens(out, prompt)).toEqual(await tokens(plain, prompt));
  });

  it("an optional request the model takes is applied as a required one is", async () => {
    const llama = join(ROOT, "test/fixtures/reference/llama-dynamo/model.onnx");
    const out = join(tmp, "optional-placed");
    const result = await compileSource(pipe(llama, "kv: streaming(sinks: 4, window: 60)?"), file, { outDir: out });
    expect(result.diagnostics).toEqual([]);
    const manifest = JSON.parse(readFileSync(join(out, "manifest.json"), "utf8"));
    expect(manifest.passes.map((p: { pass: string }) => p.pass)).toEqual(["lift-attention", "streaming-llm", "lower-attention"]);
    expect(readFileSync(join(out, "driver.ts"), "utf8")).toContain("streaming: { sinks: 4, window: 60 }");
  });

  it("shows a compile's warnings again on every cached run", async () => {
    const dir = join(tmp, "cached");
    const path = join(tmp, "cached.pipe");
    writeFileSync(path, pipe(opaque, "attention: tidal(top_k: 4)?"));
    const first = await prepareRun(path, { cacheDir: dir });
    const second = await prepareRun(path, { cacheDir: dir });
    expect(first.outDir).toBeDefined();
    expect(lines(first.compile.diagnostics)).toEqual(["5:16: warning: attention: tidal is skipped, it cannot be applied: pipec recognises no attention layer in model 'llm' (it is optional)"]);
    expect(lines(second.compile.diagnostics)).toEqual(lines(first.compile.diagnostics));
  });
});

describe("pipec check reports exactly what compile does", () => {
  const tmp = tempDir("pipec-check-compile-");
  const malformed = join(ROOT, "test/dsl/malformed");
  const files = [
    ...readdirSync(malformed).filter((f) => f.endsWith(".pipe")).map((f) => join(malformed, f)),
    ...readdirSync(join(ROOT, "examples")).filter((f) => f.endsWith(".pipe")).map((f) => join(ROOT, "examples", f)),
  ];

  it.each(files.map((f) => [f.slice(ROOT.length + 1), f]))("%s", async (_, path) => {
    const checked = analyzeFile(path, { place: true });
    const compiled = await compileFile(path, { outDir: join(tmp, String(files.indexOf(path))) });
    expect(lines(compiled.diagnostics)).toEqual(lines(checked.diagnostics.sorted()));
    expect(compiled.outDir === undefined).toBe(checked.diagnostics.hasErrors);
  }, 60_000);
});
