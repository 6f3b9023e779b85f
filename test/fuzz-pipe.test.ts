// A seeded slice of bench/fuzz.ts in the suite: mutated .pipe files through check, fmt and
// (every 25th) compile, in-process; the first few through the real CLI process.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { main } from "../compiler/cli/main.ts";
import { pipeCases } from "./fuzz/pipe-mutator.ts";
import { runPipeCase } from "./fuzz/run-case.ts";
import { pipeSeeds } from "./fuzz/seeds.ts";
import { pipecProcess } from "./helpers/run-cli.ts";
import { tempDir } from "./helpers/tmp.ts";

const CASES = 200;
const SEED = 14;
const dir = tempDir("pipec-fuzz-pipe-");

describe(`${CASES} mutated .pipe files (seed ${SEED})`, () => {
  beforeAll(async () => {
    await main(["--help"], { out: () => {}, err: () => {} }); // import every command before timing cases
  });

  it("each ends in exit 0, 1 or 2 with its diagnostics only: no stack, no hang, no partial output, the input unchanged", async () => {
    const failures: string[] = [];
    const codes = new Set<number>();
    let i = 0;
    for (const c of pipeCases(pipeSeeds(), CASES, SEED)) {
      const outcome = await runPipeCase(c, join(dir, "case"), { compile: i++ % 25 === 0 });
      failures.push(...outcome.problems.map((p) => `${outcome.name}: ${p}`));
      for (const code of Object.values(outcome.codes)) codes.add(code);
    }
    expect(failures).toEqual([]);
    // The mutations reach both sides: files that still check clean and files with errors.
    expect([...codes].sort()).toEqual([0, 1]);
  });

  it("through the real process too", () => {
    let i = 0;
    for (const c of pipeCases(pipeSeeds(), 2, SEED + 1)) {
      const file = join(dir, `process-${i++}.pipe`);
      writeFileSync(file, c.bytes);
      const r = pipecProcess("check", file);
      expect([0, 1], c.name).toContain(r.code);
      expect(r.err, c.name).not.toMatch(/^\s+at |bug in pipec/m);
    }
  });
});
