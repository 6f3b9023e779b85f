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
import { llamaConfig, writeZooModel } from "../graph/zoo/index.ts";
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
  const LLAMA_DYNAMO = join(ROOT, "test/fixtures/reference/llama-dynamo/model.onnx");
  const pipe = (model: string, speculate: string, sampling: string) => `pipeline ids {
  model llm = onnx(${JSON.stringify(model)})
  tokenizer tok = ids
  stage decode = generate(llm, tok) {
    speculate: ${speculate}
    sampling: ${sampling}
    max_tokens: 24
  }
}
`;
  const compile = async (name: string, speculate: string, sampling: string, model = LLAMA_DYNAMO) => {
    const dir = join(out, name);
    const result = await compileSource(pipe(model, speculate, sampling), join(ROOT, "examples", `${name}.pipe`), { outDir: dir });
    expect(result.diagnostics).toEqual([]);
    const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")) as { passes: { pass: string; options: Record<string, string> }[] };
    return { dir, passes: manifest.passes.filter((p) => p.pass === "logits-topk") };
  };
  /** Greedy tokens of `speculate` on the compiled model, with the logits fetches they took. */
  const speculateOn = async (dir: string, speculate: { kind: "lookup" } | { kind: "recycle" }, prompts: { input_ids: number[]; greedy: number[] }[]) => {
    const model = await DecoderModel.open(join(dir, "models/llm/model.onnx"), { device: "cpu", threads: 1 });
    try {
      for (const { input_ids, greedy } of prompts) {
        const result = await new Generator(model).run(input_ids, { maxTokens: greedy.length, eosTokenIds: [], speculate });
        expect(result.tokens, speculate.kind).toEqual(greedy);
      }
      return { logitsFetches: model.logitsFetches, outputs: model.session.outputNames.filter((n) => n.startsWith("logits_")) };
    } finally {
      await model.release();
    }
  };

  it("greedy lookup and recycle get the logits-topk pass (lookup the argmax, recycle the top-k, whose first is the argmax) and fetch no [S, V] logits, with greedy's tokens (V = 2048)", async () => {
    const { modelPath } = writeZooModel(llamaConfig({ vocabSize: 2048, seed: 9 }), join(out, "zoo-v2048"));
    const plain = await DecoderModel.open(modelPath, { device: "cpu", threads: 1 });
    const prompts = [];
    for (const input_ids of [[1, 2, 3, 4, 5], [7, 300, 7, 300, 7, 300, 11]]) prompts.push({ input_ids, greedy: (await new Generator(plain).run(input_ids, { maxTokens: 24, eosTokenIds: [] })).tokens });
    await plain.release();
    const lookup = await compile("lookup", "lookup(ngram: 2, max_draft: 8)", "greedy", modelPath);
    expect(lookup.passes.map((p) => p.options)).toEqual([{ k: "0", argmax: "true", min_vocab: "1024" }]);
    const recycle = await compile("recycle", "recycle(top_k: 8, tree: auto)", "greedy", modelPath);
    expect(recycle.passes.map((p) => p.options)).toEqual([{ k: "8", argmax: "false", min_vocab: "1024" }]);
    expect(await speculateOn(lookup.dir, { kind: "lookup" }, prompts)).toEqual({ logitsFetches: 0, outputs: ["logits_argmax"] });
    expect(await speculateOn(recycle.dir, { kind: "recycle" }, prompts)).toEqual({ logitsFetches: 0, outputs: ["logits_topk_values", "logits_topk_indices"] });
  });

  it("below min_vocab (llama-dynamo, V = 384) the pass adds no outputs and steps fetch logits, with greedy's tokens", async () => {
    for (const [name, speculate, kind] of [["lookup-small", "lookup(ngram: 2, max_draft: 8)", "lookup"], ["recycle-small", "recycle(top_k: 8, tree: auto)", "recycle"]] as const) {
      const compiled = await compile(name, speculate, "greedy");
      expect(compiled.passes).toHaveLength(1);
      const run = await speculateOn(compiled.dir, { kind }, LLAMA.prompts.slice(0, 2));
      expect(run.outputs).toEqual([]);
      expect(run.logitsFetches).toBeGreaterThan(0);
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
