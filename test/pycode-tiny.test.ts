// pipec's second trained model (examples/models/pycode-tiny: trained on the Python standard library
// with windows of 1024 tokens). pipec's runtime must give PyTorch's greedy tokens (recorded in
// expected.json by tools/make_pycode_fixtures.py, equal to onnxruntime in Python), including a
// held-out prompt whose continuation uses all 1024 trained positions.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../compiler/cli/main.ts";
import { DecoderModel } from "../runtime/decoder.ts";
import { Generator } from "../runtime/generate.ts";
import { loadTokenizer } from "../runtime/tokenizer.ts";

const DIR = join(import.meta.dirname, "../examples/models/pycode-tiny");
const HELDOUT = join(import.meta.dirname, "fixtures/heldout");
const TRAINED_POSITIONS = 1024;
const CLI_PROMPT = "def get_name(self):";

interface GreedyCase {
  name: string;
  prompt_ids: number[];
  greedy: number[];
  positions_used: number;
}

const PRESENT = ["model.onnx", "expected.json", "tokenizer.json"].every((f) => existsSync(join(DIR, f)));

describe.skipIf(!PRESENT)("examples/models/pycode-tiny", () => {
  // A skipped describe still collects its tests: read the files only when they are there.
  const expected: { cases: GreedyCase[] } = PRESENT ? JSON.parse(readFileSync(join(DIR, "expected.json"), "utf8")) : { cases: [] };
  const tokenizer = PRESENT ? loadTokenizer(join(DIR, "tokenizer.json")) : undefined!;
  let model: DecoderModel;
  beforeAll(async () => {
    model = await DecoderModel.open(join(DIR, "model.onnx"), { device: "cpu", threads: 1 });
  });
  afterAll(() => model?.release());

  for (const c of expected.cases) {
    it(`greedy decoding of "${c.name}" (${c.positions_used} positions) matches PyTorch`, async () => {
      const { tokens, finishReason } = await new Generator(model).run(c.prompt_ids, { maxTokens: c.greedy.length, eosTokenIds: [] });
      expect(finishReason).toBe("max-tokens");
      expect(tokens).toEqual(c.greedy);
    });
  }

  it("one recorded case fills all trained positions", () => {
    expect(Math.max(...expected.cases.map((c) => c.positions_used))).toBeGreaterThanOrEqual(TRAINED_POSITIONS);
  });

  it("pipec's tokenizer encodes the held-out source to the ids the long case was made from", () => {
    const long = expected.cases.find((c) => c.positions_used >= TRAINED_POSITIONS)!;
    const file = long.name.match(/heldout\/(\S+)$/)![1];
    const ids = tokenizer.encode(readFileSync(join(HELDOUT, file), "utf8"));
    expect(long.prompt_ids[0]).toBe(1); // BOS
    expect(ids.slice(0, long.prompt_ids.length - 1)).toEqual(long.prompt_ids.slice(1));
  });

  it(`pipec generate --prompt "${CLI_PROMPT}" prints the recorded code continuation`, async () => {
    const c = expected.cases.find((x) => x.name === CLI_PROMPT)!;
    expect(tokenizer.encode(CLI_PROMPT)).toEqual(c.prompt_ids);
    let out = "";
    const code = await main(["generate", join(DIR, "model.onnx"), "--tokenizer", join(DIR, "tokenizer.json"), "--prompt", CLI_PROMPT, "--max-tokens", String(c.greedy.length), "--device", "cpu", "--json"], { out: (t) => void (out += t), err: () => {} });
    expect(code).toBe(0);
    const result: { tokens: number[]; text: string } = JSON.parse(out);
    expect(result.tokens).toEqual(c.greedy);
    expect(result.text).toBe(tokenizer.decode(c.greedy));
  });
});
