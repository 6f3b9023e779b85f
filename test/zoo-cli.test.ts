// `pipec zoo`: builds a model from the command line, and bad options are one usage line.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { inspectModel } from "../compiler/api.ts";
import { pipec } from "./helpers/run-cli.ts";
import { tempDir } from "./helpers/tmp.ts";

const work = tempDir("pipec-zoo-cli-");


describe("pipec zoo", () => {
  it("writes a qwen2 model in the standard encoding with the sizes asked for", async () => {
    const dir = join(work, "qwen2");
    const r = await pipec("zoo", "qwen2", "-o", dir, "--encoding", "standard", "--layers", "3", "--hidden", "32", "--heads", "4", "--kv-heads", "2", "--vocab", "100");
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/model\.onnx: qwen2, 3 layers, hidden 32, \d+ parameters/);
    const summary = inspectModel(join(dir, "model.onnx"));
    expect(summary.ops).toMatchObject({ Attention: 3, RotaryEmbedding: 6 });
    expect(summary.outputs[0].shape).toEqual(["batch_size", "sequence_length", 100]);
    expect(JSON.parse(readFileSync(join(dir, "config.json"), "utf8"))).toMatchObject({ layers: 3, heads: 4, kvHeads: 2, headDim: 8, encoding: "standard" });
  });

  it.each([
    [["zoo", "mamba", "-o", "x"], /unknown zoo family 'mamba': one of llama, qwen2, gpt2/, 2],
    [["zoo", "llama"], /pipec zoo needs -o <dir>/, 2],
    [["zoo", "llama", "-o", "x", "--encoding", "fast"], /--encoding must be one of decomposed, ms, standard, got 'fast'/, 2],
    [["zoo", "llama", "-o", "x", "--layers", "two"], /--layers needs a whole number, got 'two'/, 2],
    [["zoo", "gpt2", "-o", "x", "--rotary", "half"], /--rotary applies to llama and qwen2/, 2],
    [["zoo", "llama", "-o", "x", "--heads", "8", "--kv-heads", "3"], /heads \(8\) must be a multiple of kvHeads \(3\)/, 1],
  ])("%j fails with one line", async (argv, message, code) => {
    const r = await pipec(...(argv as string[]));
    expect(r.code).toBe(code);
    expect(r.err).toMatch(message);
    expect(r.err.trim().split("\n")).toHaveLength(1);
  });
});
