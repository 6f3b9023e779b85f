import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { main } from "../compiler/cli/main.ts";
import { tempDir } from "./helpers/tmp.ts";

const ROOT = resolve(import.meta.dirname, "..");
const PIPE = join(ROOT, "examples/shapes-vlm.pipe");
const HELDOUT = join(ROOT, "examples/models/shapes-vlm/heldout");

describe("examples/shapes-vlm.pipe", () => {
  const cache = tempDir("pipec-vlm-example-");
  const cli = async (args: string[]) => {
    let [stdout, stderr] = ["", ""];
    const code = await main(args, { out: (t) => void (stdout += t), err: (t) => void (stderr += t) });
    return { code, stdout, stderr };
  };

  it("pipec run answers questions about images, as the trained model does on most of its held-out questions", async () => {
    const questions = (JSON.parse(readFileSync(join(HELDOUT, "questions.json"), "utf8")) as { image: string; question: string; answer: string }[]).slice(0, 10);
    let correct = 0;
    for (const q of questions) {
      const { code, stdout, stderr } = await cli(["run", PIPE, "--image", join(HELDOUT, q.image), "--prompt", q.question, "--json", "--device", "cpu", "--cache-dir", cache]);
      expect(code, stderr).toBe(0);
      const result = JSON.parse(stdout) as { text: string; stats: { visualTokens: number; keptTokens: number } };
      expect(result.stats).toMatchObject({ visualTokens: 256, keptTokens: 64 });
      if (result.text.trim() === q.answer) correct++;
    }
    expect(correct).toBeGreaterThanOrEqual(5);
  });

  it("--sampling reaches the vision pipeline: seeded draws replay, and differ from greedy", async () => {
    const ask = async (...flags: string[]) => {
      const { code, stdout, stderr } = await cli(["run", PIPE, "--image", join(HELDOUT, "000.png"), "--prompt", "what shape is it ?", "--json", "--device", "cpu", "--cache-dir", cache, "--max-tokens", "8", ...flags]);
      expect(code, stderr).toBe(0);
      return (JSON.parse(stdout) as { tokens: number[] }).tokens;
    };
    const sampled = (seed: number) => ask("--sampling", `sample(temperature: 8, seed: ${seed})`);
    const greedy = await ask();
    const [first, again, other] = [await sampled(1), await sampled(1), await sampled(2)];
    expect(again).toEqual(first);
    expect(first).not.toEqual(greedy);
    expect(other).not.toEqual(first);
  });

  it("needs --image, and refuses one for a text-only pipeline", async () => {
    const missing = await cli(["run", PIPE, "--prompt", "what shape is it ?", "--device", "cpu", "--cache-dir", cache]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/answers about an image: give it with --image FILE/);
    const extra = await cli(["run", join(ROOT, "examples/hello.pipe"), "--ids", "1,2", "--image", join(HELDOUT, "000.png"), "--device", "cpu", "--cache-dir", cache]);
    expect(extra.code).toBe(2);
    expect(extra.stderr).toMatch(/has no encode stage to take --image/);
  });

  it("a file that is not an image is one line, not a stack trace", async () => {
    const bad = await cli(["run", PIPE, "--image", PIPE, "--prompt", "what shape is it ?", "--device", "cpu", "--cache-dir", cache]);
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim().split("\n").filter((l) => !l.startsWith("pipec: no GPU"))).toEqual([expect.stringMatching(/is neither a PNG nor a JPEG file$/)]);
  });
});
