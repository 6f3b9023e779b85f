// `pipec import llama2c`: the command line over importLlama2c.

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { inspectModel } from "../compiler/api.ts";
import { pipec } from "./helpers/run-cli.ts";
import { tempDir } from "./helpers/tmp.ts";

const STORIES = join(import.meta.dirname, "..", "..", "shared", "fixtures", "stories260K", "stories260K.bin");
const work = tempDir("pipec-import-cli-");


describe.skipIf(!existsSync(STORIES))(`pipec import llama2c (needs ${STORIES})`, () => {
  it("writes model.onnx and config.json in the encoding asked for", async () => {
    const dir = join(work, "stories");
    const r = await pipec("import", "llama2c", STORIES, "-o", dir, "--encoding", "ms");
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/model\.onnx: llama, 5 layers, hidden 64, 8 heads \/ 4 kv heads, vocab 512, \d+ parameters/);
    expect(inspectModel(join(dir, "model.onnx")).ops).toMatchObject({ "com.microsoft::GroupQueryAttention": 5 });
    expect(JSON.parse(readFileSync(join(dir, "config.json"), "utf8"))).toMatchObject({ layers: 5, kvHeads: 4, maxPositions: 512 });
  });
});

describe("pipec import: bad command lines", () => {
  it.each([
    [["import"], /pipec import needs a format, one of: llama2c/, 2],
    [["import", "gguf", "x.gguf", "-o", "d"], /one of: llama2c \(got 'gguf'\)/, 2],
    [["import", "llama2c", "-o", "d"], /needs a checkpoint file/, 2],
    [["import", "llama2c", "x.bin"], /needs -o <dir>/, 2],
    [["import", "llama2c", join(work, "nope.bin"), "-o", join(work, "d")], /nope\.bin: no such file/, 1],
  ])("%j fails with one line", async (argv, message, code) => {
    const r = await pipec(...(argv as string[]));
    expect(r.code).toBe(code);
    expect(r.err).toMatch(message);
    expect(r.err.trim().split("\n")).toHaveLength(1);
  });
});
