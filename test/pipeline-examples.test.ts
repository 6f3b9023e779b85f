import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { main } from "../compiler/cli/main.ts";
import { analyzeFile } from "../compiler/pipeline/frontend.ts";
import { tempDir } from "./helpers/tmp.ts";

const ROOT = resolve(import.meta.dirname, "..");
const EXAMPLES = join(ROOT, "examples");
const LLAMA = JSON.parse(readFileSync(join(ROOT, "test/fixtures/reference/llama-dynamo/expected.json"), "utf8")) as { prompts: { input_ids: number[]; greedy: number[] }[] };

describe("examples/*.pipe", () => {
  const cache = tempDir("pipec-examples-");

  async function run(example: string, ids: number[]): Promise<{ tokens: number[]; stats: Record<string, unknown> }> {
    let stdout = "";
    let stderr = "";
    const code = await main(["run", join(EXAMPLES, example), "--ids", ids.join(","), "--json", "--device", "cpu", "--cache-dir", cache], { out: (t) => void (stdout += t), err: (t) => void (stderr += t) });
    expect(code, stderr).toBe(0);
    return JSON.parse(stdout);
  }

  it.each(readdirSync(EXAMPLES).filter((f) => f.endsWith(".pipe")))("%s checks clean", (name) => {
    const result = analyzeFile(join(EXAMPLES, name));
    expect(result.diagnostics.items).toEqual([]);
    expect(result.ir).toBeDefined();
  });

  it("hello.pipe decodes the greedy tokens onnxruntime gave in Python", async () => {
    const { input_ids, greedy } = LLAMA.prompts[0]!;
    expect((await run("hello.pipe", input_ids)).tokens).toEqual(greedy);
  });

  it("speculate.pipe drafts by prompt lookup and still gives exactly the greedy tokens", async () => {
    const { input_ids, greedy } = LLAMA.prompts[2]!;
    const result = await run("speculate.pipe", input_ids);
    expect(result.tokens).toEqual(greedy);
    expect(result.stats["speculative"]).toMatchObject({ source: "lookup" });
  });

  it("sparse.pipe runs tidal attention: greedy's tokens until the budget bites, then its own", async () => {
    const { input_ids, greedy } = LLAMA.prompts[0]!;
    const sparse = (await run("sparse.pipe", input_ids)).tokens;
    expect(sparse).toHaveLength(24);
    expect(sparse[0]).toBe(greedy[0]);
    expect(sparse).not.toEqual(greedy);
  });

  it("sampling.pipe gives the same tokens for the same seed", async () => {
    const ids = [1, 17, 42, 99];
    const [a, b] = [await run("sampling.pipe", ids), await run("sampling.pipe", ids)];
    expect(a.tokens).toHaveLength(32);
    expect(b.tokens).toEqual(a.tokens);
  });
});
