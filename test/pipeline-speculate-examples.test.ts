// The Token Recycling and self-speculation examples compile (tree-attention-mask on the target;
// a self-draft model derived by the pipeline) and give exactly the greedy tokens onnxruntime
// gave in Python.
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { main } from "../compiler/cli/main.ts";
import { compileSource } from "../compiler/pipeline/compile.ts";
import { runCompiled } from "../compiler/pipeline/run.ts";
import { DecoderModel } from "../runtime/decoder.ts";
import { Generator } from "../runtime/generate.ts";
import { tempDir } from "./helpers/tmp.ts";

const ROOT = resolve(import.meta.dirname, "..");
const LLAMA = JSON.parse(readFileSync(join(ROOT, "test/fixtures/reference/llama-dynamo/expected.json"), "utf8")) as { prompts: { input_ids: number[]; greedy: number[] }[] };

describe("examples/speculate-recycle.pipe and speculate-self.pipe", () => {
  const cache = tempDir("pipec-speculate-examples-");

  async function run(example: string, ids: number[]): Promise<{ tokens: number[]; stats: Record<string, unknown> }> {
    let stdout = "";
    let stderr = "";
    const code = await main(["run", join(ROOT, "examples", example), "--ids", ids.join(","), "--json", "--device", "cpu", "--cache-dir", cache], { out: (t) => void (stdout += t), err: (t) => void (stderr += t) });
    expect(code, stderr).toBe(0);
    return JSON.parse(stdout);
  }

  for (const [example, source] of [["speculate-recycle.pipe", "recycle"], ["speculate-self.pipe", "draft"]] as const) {
    it(`${example}: speculation by ${source}, exactly the greedy tokens on 2 prompts`, async () => {
      for (const { input_ids, greedy } of LLAMA.prompts.slice(0, 2)) {
        const result = await run(example, input_ids);
        expect(result.tokens).toEqual(greedy);
        expect(result.stats["speculative"]).toMatchObject({ source });
      }
    });
  }
});

describe("speculation compiled from a .pipe decides by the graph's ids", () => {
  const out = tempDir("pipec-speculate-ids-");
  const pipe = (speculate: string, sampling: string) => `pipeline ids {
  model llm = onnx("../test/fixtures/reference/llama-dynamo/model.onnx")
  tokenizer tok = ids
  stage decode = generate(llm, tok) {
    speculate: ${speculate}
    sampling: ${sampling}
    max_tokens: 24
  }
}
`;
  const compile = async (name: string, speculate: string, sampling: string) => {
    const dir = join(out, name);
    const result = await compileSource(pipe(speculate, sampling), join(ROOT, "examples", `${name}.pipe`), { outDir: dir });
    expect(result.diagnostics).toEqual([]);
    const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")) as { passes: { pass: string; options: Record<string, string> }[] };
    return { dir, passes: manifest.passes.filter((p) => p.pass === "logits-topk") };
  };

  it("greedy lookup and recycle get the logits-topk pass (argmax; recycle's top-k too) and fetch no [S, V] logits, with greedy's tokens", async () => {
    const lookup = await compile("lookup", "lookup(ngram: 2, max_draft: 8)", "greedy");
    expect(lookup.passes.map((p) => p.options)).toEqual([{ k: "0", argmax: "true" }]);
    const recycle = await compile("recycle", "recycle(top_k: 8, tree: auto)", "greedy");
    expect(recycle.passes.map((p) => p.options)).toEqual([{ k: "8", argmax: "true" }]);
    for (const [dir, speculate] of [[lookup.dir, { kind: "lookup" as const }], [recycle.dir, { kind: "recycle" as const }]] as const) {
      const model = await DecoderModel.open(join(dir, "models/llm/model.onnx"), { device: "cpu", threads: 1 });
      try {
        for (const { input_ids, greedy } of LLAMA.prompts.slice(0, 2)) {
          const result = await new Generator(model).run(input_ids, { maxTokens: greedy.length, eosTokenIds: [], speculate });
          expect(result.tokens).toEqual(greedy);
        }
        expect(model.logitsFetches).toBe(0);
      } finally {
        await model.release();
      }
    }
  });

  it("a stage that samples reads the logits: no logits-topk pass, and its seeded tokens replay", async () => {
    const sampled = await compile("sampled", "lookup(ngram: 2, max_draft: 8)", "sample(temperature: 0.8, seed: 3)");
    expect(sampled.passes).toEqual([]);
    const run = async (): Promise<number[]> => {
      for await (const event of runCompiled(sampled.dir, LLAMA.prompts[0]!.input_ids, { device: "cpu" })) if (event.kind === "end") return event.tokens;
      throw new Error("no end event");
    };
    const first = await run();
    expect(first).toHaveLength(24);
    expect(await run()).toEqual(first);
  });
});
