import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { main } from "../compiler/cli/main.ts";
import { compileFile, compileSource } from "../compiler/pipeline/compile.ts";
import { runtimeFile } from "../compiler/pipeline/driver-writer.ts";
import { runCompiled } from "../compiler/pipeline/run.ts";
import { tempDir } from "./helpers/tmp.ts";
import { expectTypeChecks } from "./helpers/type-check.ts";

const ROOT = resolve(import.meta.dirname, "..");
const BIN = (name: string) => join(ROOT, "node_modules/.bin", name);
const EXPECTED = JSON.parse(readFileSync(join(ROOT, "test/fixtures/reference/llama-dynamo/expected.json"), "utf8")) as { prompts: { input_ids: number[]; greedy: number[] }[] };

describe("the generated driver.ts", () => {
  const tmp = tempDir("pipec-driver-");
  const out = join(tmp, "hello");
  const { input_ids, greedy } = EXPECTED.prompts[1]!;

  it("type-checks with tsc", async () => {
    await compileFile(join(ROOT, "examples/hello.pipe"), { outDir: out });
    expectTypeChecks([join(out, "driver.ts")]);
  });

  it("type-checks with every optional part: a tokenizer, a draft model of adaptive length, sampling, stop strings, eviction, a method's KV policy; and as a vision driver", async () => {
    // Each optional part the generators can emit must type-check together with the others.
    const sotu = join(ROOT, "examples/models/sotu-tiny");
    const source = `pipeline every_part {
  model llm = onnx(${JSON.stringify(join(sotu, "model.onnx"))})
  model small = onnx(${JSON.stringify(join(sotu, "model.onnx"))})
  tokenizer tok = hf(${JSON.stringify(join(sotu, "tokenizer.json"))})
  stage decode = generate(llm, tok) {
    speculate: draft(model: small, k: adaptive(threshold: 0.5, min: 1, max: 6))
    sampling: sample(temperature: 0.7, top_p: 0.9, repetition_penalty: 1.2, seed: 3)
    stop: ["a\\"b", "\\n"]
    max_tokens: 24
  }
}
`;
    const dirs = { every: join(tmp, "every-part"), streaming: join(tmp, "streaming-lookup"), window: join(tmp, "sliding-window"), vision: join(tmp, "shapes-vlm") };
    expect((await compileSource(source, join(tmp, "every-part.pipe"), { outDir: dirs.every })).diagnostics).toEqual([]);
    expect((await compileFile(join(ROOT, "examples/story-streaming-lookup.pipe"), { outDir: dirs.streaming })).diagnostics).toEqual([]);
    expect((await compileFile(join(ROOT, "examples/sliding-window.pipe"), { outDir: dirs.window })).diagnostics).toEqual([]);
    expect((await compileFile(join(ROOT, "examples/shapes-vlm.pipe"), { outDir: dirs.vision })).diagnostics).toEqual([]);
    const every = readFileSync(join(dirs.every, "driver.ts"), "utf8");
    for (const part of ['stop: ["a\\"b", "\\n"]', "repetitionPenalty: 1.2", 'draftLength: "adaptive"', "draftModel.release()"]) expect(every).toContain(part);
    expect(readFileSync(join(dirs.streaming, "driver.ts"), "utf8")).toContain("streaming: { sinks: 4, window: 32 }");
    expect(readFileSync(join(dirs.window, "driver.ts"), "utf8")).toContain("kvPolicies: [() => new SlidingWindowEviction({ size: 32 })]");
    expectTypeChecks(Object.values(dirs).map((dir) => join(dir, "driver.ts")));
  });

  it("imports a method's KV policy from beside the runtime it imports", () => {
    expect(runtimeFile("../../runtime/index.ts", "kv-policies/p.ts")).toBe("../../runtime/kv-policies/p.ts");
    expect(runtimeFile("pipec/runtime", "kv-policies/p.ts")).toBe("pipec/runtime/kv-policies/p.ts");
  });

  it("run with tsx gives the same tokens as pipec run and as onnxruntime in Python", async () => {
    const runner = join(tmp, "runner.mts");
    writeFileSync(
      runner,
      `import { createPipeline } from ${JSON.stringify(join(out, "driver.ts"))};
const pipeline = await createPipeline({ device: "cpu" });
for await (const event of pipeline.generate(${JSON.stringify(input_ids)})) if (event.kind === "end") console.log(JSON.stringify(event.tokens));
await pipeline.close();
`,
    );
    const fromDriver = JSON.parse(execFileSync(BIN("tsx"), [runner], { encoding: "utf8" }).trim().split("\n").at(-1)!) as number[];
    let stdout = "";
    const code = await main(["run", join(ROOT, "examples/hello.pipe"), "--ids", input_ids.join(","), "--json", "--device", "cpu", "--cache-dir", join(tmp, "cache")], { out: (t) => void (stdout += t), err: () => {} });
    expect(code).toBe(0);
    const fromRun = (JSON.parse(stdout) as { tokens: number[] }).tokens;
    expect(fromDriver).toEqual(greedy);
    expect(fromRun).toEqual(fromDriver);
  });

  it("opens the draft model of speculate: draft and still decodes exactly the greedy tokens", async () => {
    const fixture = (name: string) => JSON.stringify(join(ROOT, "test/fixtures/reference", name, "model.onnx"));
    const source = `pipeline spec {
  model llm = onnx(${fixture("llama-dynamo")})
  model small = onnx(${fixture("qwen2-dynamo")})
  tokenizer tok = ids
  stage decode = generate(llm, tok) {
    speculate: draft(model: small, k: 3)
    max_tokens: 24
  }
}
`;
    const specOut = join(tmp, "spec");
    const compiled = await compileSource(source, join(tmp, "spec.pipe"), { outDir: specOut });
    expect(compiled.diagnostics).toEqual([]);
    expect(readFileSync(join(specOut, "driver.ts"), "utf8")).toContain('const speculate = { kind: "draft", model: draftModel, draftLength: 3 } as const;');
    let end: { tokens: number[]; stats: { speculative?: { source: string } } } | undefined;
    for await (const event of runCompiled(specOut, input_ids, { device: "cpu" })) if (event.kind === "end") end = event;
    expect(end!.tokens).toEqual(greedy);
    expect(end!.stats.speculative?.source).toBe("draft");
  });
});
