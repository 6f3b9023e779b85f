import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { main } from "../compiler/cli/main.ts";
import { tempDir } from "./helpers/tmp.ts";

const ROOT = resolve(import.meta.dirname, "..");
const MODEL = join(ROOT, "examples/models/sotu-tiny/model.onnx");
const PROMPT = "Fellow-Citizens of the Senate and House of Representatives:";

interface RunResult {
  tokens: number[];
  text: string;
  stats: { speculative?: { targetCalls: number; generatedTokens: number } };
}

/** The story examples on the project's own trained model, through `pipec run`. */
describe.skipIf(!existsSync(MODEL))("examples/story*.pipe on the trained model", () => {
  const cache = tempDir("pipec-story-");

  async function run(example: string): Promise<RunResult> {
    let stdout = "";
    let stderr = "";
    const code = await main(["run", join(ROOT, "examples", example), "--prompt", PROMPT, "--json", "--device", "cpu", "--cache-dir", cache], {
      out: (t) => void (stdout += t),
      err: (t) => void (stderr += t),
    });
    expect(code, stderr).toBe(0);
    return JSON.parse(stdout) as RunResult;
  }

  it("story-recycle.pipe is lossless: story.pipe's tokens in fewer model calls", async () => {
    const [plain, recycled] = [await run("story.pipe"), await run("story-recycle.pipe")];
    expect(plain.text.length).toBeGreaterThan(100);
    expect(recycled.tokens).toEqual(plain.tokens);
    expect(recycled.stats.speculative!.targetCalls).toBeLessThan(plain.tokens.length);
  });

  it("story-tokenselect.pipe runs its lossy budget and still writes text", async () => {
    const sparse = await run("story-tokenselect.pipe");
    expect(sparse.tokens).toHaveLength(64);
    expect(sparse.text).toMatch(/United States/);
  });
});
