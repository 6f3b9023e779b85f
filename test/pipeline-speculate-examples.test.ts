// The Token Recycling and self-speculation examples compile (tree-attention-mask on the target;
// a self-draft model derived by the pipeline) and give exactly the greedy tokens onnxruntime
// gave in Python.
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { main } from "../compiler/cli/main.ts";
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
