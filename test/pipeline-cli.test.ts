import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { main } from "../compiler/cli/main.ts";
import { entryFor } from "../compiler/pipeline/cache-dir.ts";
import { tempDir } from "./helpers/tmp.ts";

const ROOT = resolve(import.meta.dirname, "..");
const HELLO = join(ROOT, "examples/hello.pipe");

async function pipec(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let [out, err] = ["", ""];
  const code = await main(args, { out: (t) => void (out += t), err: (t) => void (err += t) });
  return { code, out, err };
}

describe("pipec check / fmt / compile / ir on .pipe files", () => {
  const tmp = tempDir("pipec-cli-pipe-");

  it("check: 0 when clean, 1 with every error printed with a caret, 2 on usage errors", async () => {
    expect(await pipec("check", HELLO)).toMatchObject({ code: 0, out: `${HELLO}: ok\n` });
    const bad = join(ROOT, "test/dsl/malformed/several-errors.pipe");
    const failed = await pipec("check", bad);
    expect(failed.code).toBe(1);
    expect(failed.err.match(/^\S+:\d+:\d+: error: /gm)).toHaveLength(4);
    expect(failed.err).toContain("                 ^~~~~\n");
    expect(failed.err.trimEnd().endsWith(`${bad}: 4 errors`)).toBe(true);
    expect((await pipec("check")).code).toBe(2);
    expect((await pipec("check", HELLO, "--strict")).code).toBe(2);
  });

  it("fmt: prints the canonical text, --check lists unformatted files, --write fixes them", async () => {
    const file = join(tmp, "messy.pipe");
    const messy = readFileSync(HELLO, "utf8").replace("sampling: greedy", "sampling:greedy").replace("max_tokens: 24", "  max_tokens:24");
    writeFileSync(file, messy);
    expect(await pipec("fmt", file)).toMatchObject({ code: 0, out: readFileSync(HELLO, "utf8") });
    expect(await pipec("fmt", "--check", file)).toMatchObject({ code: 1, out: `${file}\n` });
    expect((await pipec("fmt", "--write", file)).code).toBe(0);
    expect(readFileSync(file, "utf8")).toBe(readFileSync(HELLO, "utf8"));
    expect((await pipec("fmt", "--check", file)).code).toBe(0);
  });

  it("compile: needs -o, reports errors and leaves no folder", async () => {
    expect((await pipec("compile", HELLO)).code).toBe(2);
    const out = join(tmp, "out");
    const bad = await pipec("compile", join(ROOT, "test/dsl/malformed/typo-method.pipe"), "-o", out);
    expect(bad.code).toBe(1);
    expect(bad.err).toContain("unknown attention method 'tidl' (did you mean 'tidal'?)");
    expect(bad.err).toContain("is unchanged");
    expect((await pipec("compile", HELLO, "-o", out)).code).toBe(0);
    expect(readFileSync(join(out, "pipeline.ir"), "utf8")).toContain("pipeline hello {");
  });

  it("ir: prints the pipeline IR of a .pipe file", async () => {
    const { code, out } = await pipec("ir", join(ROOT, "examples/speculate.pipe"));
    expect(code).toBe(0);
    expect(out).toContain("    speculate: lookup(ngram: 2, max_draft: 8)  # runtime\n");
    expect(out).toContain("    kv_inputs: [\"past_key_values.0.key\", \"past_key_values.0.value\", \"past_key_values.1.key\", \"past_key_values.1.value\"]\n");
  });

  it("ir --after / --dump-dir: shows each model's graph around its planned passes", async () => {
    const dump = join(tmp, "dump");
    const { code, out } = await pipec("ir", join(ROOT, "examples/sparse.pipe"), "--after", "tidal", "--dump-dir", dump);
    expect(code).toBe(0);
    expect(out).toContain(": lift-attention, tidal, lower-attention\n");
    expect(out).toContain("// ----- IR after tidal (#2) -----");
    expect(readdirSync(join(dump, "llm")).sort()).toEqual(["00-input.txt", "01-lift-attention.txt", "02-tidal.txt", "03-lower-attention.txt"]);
  });

  it("run: compiles into the cache once, and again when the .pipe changes", async () => {
    const file = join(tmp, "cached.pipe");
    const model = JSON.stringify(join(ROOT, "test/fixtures/reference/llama-dynamo/model.onnx"));
    const write = (maxTokens: number) => writeFileSync(file, `pipeline cached {\n  model llm = onnx(${model})\n  tokenizer tok = ids\n  stage decode = generate(llm, tok) {\n    max_tokens: ${maxTokens}\n  }\n}\n`);
    const cache = join(tmp, "cache");
    const run = async () => JSON.parse((await pipec("run", file, "--ids", "1,5,9,23", "--json", "--device", "cpu", "--cache-dir", cache)).out) as { tokens: number[] };
    const driver = join(entryFor(cache, file), "driver.ts");
    write(3);
    expect((await run()).tokens).toHaveLength(3);
    const compiledAt = statSync(driver).mtimeMs;
    expect((await run()).tokens).toHaveLength(3);
    expect(statSync(driver).mtimeMs).toBe(compiledAt);
    write(5);
    expect((await run()).tokens).toHaveLength(5);
    expect(statSync(driver).mtimeMs).toBeGreaterThan(compiledAt);
  });
});
