/**
 * Runs fuzz cases in one process for bench/fuzz.ts, which watches it for hangs and crashes.
 * Usage: tsx bench/fuzz-child.ts <pipe|onnx> <from> <count> <seed> <dir>
 * Prints `{"start": i}` before case i and `{"i", "name", "codes", "problems", "ms"}` after it.
 */
import { join } from "node:path";
import { main } from "../compiler/cli/main.ts";
import { onnxCases } from "../test/fuzz/onnx-mutator.ts";
import { pipeCases } from "../test/fuzz/pipe-mutator.ts";
import { runOnnxCase, runPipeCase } from "../test/fuzz/run-case.ts";
import { onnxSeeds, pipeSeeds } from "../test/fuzz/seeds.ts";

const [kind, fromText, countText, seedText, dir] = process.argv.slice(2);
const [from, count, seed] = [Number(fromText), Number(countText), Number(seedText)];
const say = (line: object) => process.stdout.write(`${JSON.stringify(line)}\n`);

// Loads every command once, so that no case's timing includes importing the CLI.
await main(["--help"], { out: () => {}, err: () => {} });

let i = 0;
const cases = kind === "pipe" ? pipeCases(pipeSeeds(), count, seed) : onnxCases(onnxSeeds(), count, seed);
for (const c of cases) {
  if (i >= from) {
    say({ start: i });
    // Every 10th .pipe case also compiles; every onnx case also runs under onnxruntime.
    const outcome = kind === "pipe" ? await runPipeCase(c, join(dir!, "case"), { compile: i % 10 === 0 }) : await runOnnxCase(c, join(dir!, "case"), { generate: true });
    say({ i, ...outcome });
  }
  i++;
}
