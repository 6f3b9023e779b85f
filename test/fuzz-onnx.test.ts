// A seeded slice of bench/fuzz.ts in the suite: mutated ONNX models through inspect, ir, opt and
// (every 10th) generate, in-process; the first few through the real CLI process.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { main } from "../compiler/cli/main.ts";
import { onnxCases } from "./fuzz/onnx-mutator.ts";
import { runOnnxCase } from "./fuzz/run-case.ts";
import { onnxSeeds } from "./fuzz/seeds.ts";
import { pipecProcess } from "./helpers/run-cli.ts";
import { tempDir } from "./helpers/tmp.ts";

const CASES = 200;
const SEED = 14;
const dir = tempDir("pipec-fuzz-onnx-");

describe(`${CASES} mutated ONNX models (seed ${SEED})`, () => {
  beforeAll(async () => {
    await main(["--help"], { out: () => {}, err: () => {} }); // import every command before timing cases
  });

  it("each ends in exit 0, 1 or 2 with one line: no stack, no hang, no partial output, the input unchanged", async () => {
    const failures: string[] = [];
    const codes = new Set<number>();
    const seeds = onnxSeeds();
    let i = 0;
    for (const c of onnxCases(seeds, CASES, SEED)) {
      const outcome = await runOnnxCase(c, join(dir, "case"), { generate: i++ % 10 === 0 });
      failures.push(...outcome.problems.map((p) => `${outcome.name}: ${p}`));
      for (const code of Object.values(outcome.codes)) codes.add(code);
    }
    expect(failures).toEqual([]);
    expect([...codes].sort()).toEqual([0, 1]);
  });

  it("through the real process too", () => {
    let i = 0;
    for (const c of onnxCases(onnxSeeds(), 1, SEED + 1)) {
      const file = join(dir, `process-${i++}.onnx`);
      writeFileSync(file, c.bytes);
      for (const args of [["inspect", file], ["generate", file, "--ids", "1", "--max-tokens", "1", "--device", "cpu"]]) {
        const r = pipecProcess(...args);
        expect([0, 1], `${c.name}: ${r.err}`).toContain(r.code);
        expect(r.err, c.name).not.toMatch(/^\s+at |bug in pipec/m);
        if (r.code) expect(r.err.trimEnd().split("\n").filter((l) => !l.includes("no GPU provider")), c.name).toHaveLength(1);
      }
    }
  });
});
