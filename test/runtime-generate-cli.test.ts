// `pipec generate`: the CLI shell over the runtime.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { generateCommand } from "../compiler/cli/commands/generate.ts";
import { isPipecError } from "../graph/errors.ts";
import { DecoderModel } from "../runtime/decoder.ts";
import { Generator } from "../runtime/generate.ts";
import { GPT2_TOKENIZER, HAVE_SHARED, NO_SHARED, REFERENCE_DIR } from "./helpers/runtime-models.ts";

const MODEL = join(REFERENCE_DIR, "llama-torchscript/model.onnx");

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await generateCommand.run(args, { out: (t) => void (out += t), err: (t) => void (err += t) });
  return { code, out, err };
}

async function failure(args: string[]): Promise<Error> {
  try {
    await run(args);
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected the command to fail");
}

describe("pipec generate", () => {
  it("--ids --json prints the generated ids, text and stats", async () => {
    const model = await DecoderModel.open(MODEL, { device: "cpu" });
    const expected = await new Generator(model).run([5, 6, 7], { maxTokens: 6 });
    await model.release();

    const { code, out, err } = await run([MODEL, "--ids", "5,6,7", "--max-tokens", "6", "--device", "cpu", "--json"]);
    expect(code).toBe(0);
    expect(err).toBe("");
    const json = JSON.parse(out);
    expect(json.tokens).toEqual(expected.tokens);
    expect(json.text).toBe("");
    expect(json.stats).toMatchObject({ promptTokens: 3, generatedTokens: 6, device: "cpu" });
  });

  it("streams ids and writes one stats line on stderr; auto falls back with one line", async () => {
    const { code, out, err } = await run([MODEL, "--ids", "5,6,7", "--max-tokens", "4", "--sampling", "temperature=0.7,top_k=20,seed=4"]);
    expect(code).toBe(0);
    expect(out).toMatch(/^\d+ \d+ \d+ \d+\n$/);
    const lines = err.trim().split("\n");
    expect(lines.at(-1)).toMatch(/^3 prompt \+ 4 generated tokens on cpu: .*; stopped: max-tokens$/);
    expect(lines.length).toBeLessThanOrEqual(2); // the stats, and on a machine without a GPU the fallback line
  });

  it("bad input is one clear error", async () => {
    expect((await failure([MODEL, "--prompt", "hi"])).message).toMatch(/--prompt needs --tokenizer/);
    expect((await failure([MODEL, "--ids", "1,x"])).message).toMatch(/--ids needs comma-separated token ids/);
    expect((await failure([MODEL, "--ids", "1", "--device", "tpu"])).message).toMatch(/--device must be one of/);
    expect((await failure([MODEL, "--ids", "1", "--sampling", "temperature=hot"])).message).toMatch(/--sampling/);
    expect(await run([MODEL, "--ids", "1", "--sampling", "hot"])).toMatchObject({ code: 1, err: expect.stringMatching(/^--sampling:1:1: error: unknown sampling method 'hot'/) });
    const missing = await failure(["nope.onnx", "--ids", "1"]);
    expect(isPipecError(missing) && missing.message).toBe("nope.onnx: no such file");
  });

  it.skipIf(!HAVE_SHARED)(`a tokenizer that does not fit the model is a PipecError ${HAVE_SHARED ? "" : NO_SHARED}`, async () => {
    const error = await failure([MODEL, "--tokenizer", GPT2_TOKENIZER, "--prompt", "Hello", "--device", "cpu"]);
    expect(isPipecError(error) && error.code).toBe("tokenizer-mismatch");
  });
});
