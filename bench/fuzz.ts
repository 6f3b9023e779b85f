/**
 * Fuzzes pipec with mutated .pipe files and ONNX models (issue 14).
 *
 *   npx tsx bench/fuzz.ts --pipe N --onnx N [--seed S] [--processes K]
 *
 * Cases run in a child process (bench/fuzz-child.ts) through pipec's commands in-process: check,
 * fmt and (every 10th) compile for a .pipe; inspect, ir, opt and generate for a model. The parent
 * restarts the child past a case that hangs (no result within 10 s) or kills it (a crash of the
 * process). Each case must end in exit 0, 1 or 2 with its error's own lines, no stack trace,
 * no output left by a failed command and its input unchanged. The first K cases of each kind
 * (default 10) also run through the real `bin/pipec.mjs` process. Exit code 1 on any failure.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { onnxCases } from "../test/fuzz/onnx-mutator.ts";
import { pipeCases } from "../test/fuzz/pipe-mutator.ts";
import { HANG_MS } from "../test/fuzz/run-case.ts";
import { onnxSeeds, pipeSeeds } from "../test/fuzz/seeds.ts";

const ROOT = join(import.meta.dirname, "..");
const { values } = parseArgs({ options: { pipe: { type: "string" }, onnx: { type: "string" }, seed: { type: "string" }, processes: { type: "string" } } });
const seed = Number(values.seed ?? 1);
const counts = { pipe: Number(values.pipe ?? 0), onnx: Number(values.onnx ?? 0) };
const viaProcess = Number(values.processes ?? 10);

interface Tally {
  cases: number;
  crashes: number;
  stackTraces: number;
  hangs: number;
  partialOutputs: number;
  inputsChanged: number;
  otherProblems: number;
  exitCodes: Record<string, number>;
  slowestMs: number;
  failures: string[];
}

function emptyTally(): Tally {
  return { cases: 0, crashes: 0, stackTraces: 0, hangs: 0, partialOutputs: 0, inputsChanged: 0, otherProblems: 0, exitCodes: {}, slowestMs: 0, failures: [] };
}

function classify(t: Tally, name: string, problems: string[]): void {
  for (const p of problems) {
    if (/: exit (?![012]:)\d+/.test(p)) t.crashes++;
    else if (/stack trace/.test(p)) t.stackTraces++;
    else if (/took \d+ ms/.test(p)) t.hangs++;
    else if (/left its output|failed after printing|does not load/.test(p)) t.partialOutputs++;
    else if (/input changed/.test(p)) t.inputsChanged++;
    else t.otherProblems++;
    if (t.failures.length < 30) t.failures.push(`${name}: ${p}`);
  }
}

/** Runs cases [0, count) of `kind` in watched children, restarting past hangs and crashes. */
async function runKind(kind: "pipe" | "onnx", count: number, dir: string): Promise<Tally> {
  const tally = emptyTally();
  let next = 0;
  while (next < count) {
    next = await new Promise<number>((done) => {
      const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "bench/fuzz-child.ts"), kind, String(next), String(count), String(seed), dir], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
      let current = next;
      let buffer = "";
      let stderr = "";
      let timer: NodeJS.Timeout | undefined;
      const watch = () => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          tally.cases++;
          tally.hangs++;
          tally.failures.push(`${kind} case ${current}: no result in ${HANG_MS / 1000} s`);
          child.kill("SIGKILL");
        }, HANG_MS * 3); // the child's own timing catches commands over HANG_MS; this is for a process stuck for good
      };
      child.stdout.on("data", (chunk: Buffer) => {
        buffer += chunk.toString();
        let nl: number;
        while ((nl = buffer.indexOf("\n")) >= 0) {
          const line = JSON.parse(buffer.slice(0, nl)) as { start?: number; i?: number; name?: string; problems?: string[]; codes?: Record<string, number>; ms?: number };
          buffer = buffer.slice(nl + 1);
          if (line.start !== undefined) {
            current = line.start;
            watch();
          } else {
            tally.cases++;
            tally.slowestMs = Math.max(tally.slowestMs, line.ms!);
            for (const [command, code] of Object.entries(line.codes!)) tally.exitCodes[`${command} ${code}`] = (tally.exitCodes[`${command} ${code}`] ?? 0) + 1;
            classify(tally, line.name!, line.problems!);
            current = line.i! + 1;
          }
        }
      });
      child.stderr.on("data", (chunk: Buffer) => void (stderr += chunk.toString()));
      child.on("exit", (code, signal) => {
        clearTimeout(timer);
        if (current < count && (code !== 0 || signal)) {
          if (signal !== "SIGKILL") {
            tally.cases++;
            tally.crashes++;
            tally.failures.push(`${kind} case ${current}: the process died (${signal ?? `exit ${code}`}): ${stderr.trim().split("\n").slice(-3).join(" | ").slice(0, 300)}`);
          }
          done(current + 1);
        } else done(count);
      });
    });
  }
  return tally;
}

/** The first cases through the real CLI process: one line on stderr, exit 0, 1 or 2, no stack. */
function runProcesses(dir: string): string[] {
  const failures: string[] = [];
  const cli = join(ROOT, "bin/pipec.mjs");
  const check = (name: string, args: string[]) => {
    const r = spawnSync(process.execPath, [cli, ...args], { encoding: "utf8", timeout: HANG_MS });
    const lines = r.stderr.trimEnd().split("\n").filter((l) => l && !l.startsWith("pipec: no GPU provider loaded"));
    if (r.status === null) failures.push(`${name}: ${args[0]}: killed (${r.signal})`);
    else if (![0, 1, 2].includes(r.status)) failures.push(`${name}: ${args[0]}: exit ${r.status}`);
    else if (/^\s+at /m.test(r.stderr)) failures.push(`${name}: ${args[0]}: stack trace`);
    else if (args[0] !== "check" && r.status !== 0 && lines.length !== 1) failures.push(`${name}: ${args[0]}: ${lines.length} lines on stderr`);
  };
  let i = 0;
  for (const c of pipeCases(pipeSeeds(), Math.min(viaProcess, counts.pipe), seed)) {
    const file = join(dir, `process-${i++}.pipe`);
    writeFileSync(file, c.bytes);
    check(c.name, ["check", file]);
  }
  for (const c of onnxCases(onnxSeeds(), Math.min(viaProcess, counts.onnx), seed)) {
    const file = join(dir, `process-${i++}.onnx`);
    writeFileSync(file, c.bytes);
    check(c.name, ["inspect", file]);
    check(c.name, ["generate", file, "--ids", "1,2", "--max-tokens", "2", "--device", "cpu"]);
  }
  return failures;
}

const dir = mkdtempSync(join(tmpdir(), "pipec-fuzz-"));
const started = performance.now();
try {
  const results: [string, Tally][] = [];
  if (counts.pipe) results.push([".pipe", await runKind("pipe", counts.pipe, join(dir, "pipe"))]);
  if (counts.onnx) results.push([".onnx", await runKind("onnx", counts.onnx, join(dir, "onnx"))]);
  const processFailures = runProcesses(dir);
  let failed = processFailures.length;
  for (const [kind, t] of results) {
    const bad = t.crashes + t.stackTraces + t.hangs + t.partialOutputs + t.inputsChanged + t.otherProblems;
    failed += bad;
    console.log(`${kind}: ${t.cases} cases: ${t.crashes} crashes, ${t.stackTraces} stack traces, ${t.hangs} hangs, ${t.partialOutputs} partial outputs, ${t.inputsChanged} inputs changed, ${t.otherProblems} other; slowest case ${Math.round(t.slowestMs)} ms`);
    console.log(`  exit codes: ${Object.entries(t.exitCodes).sort().map(([k, n]) => `${k}: ${n}`).join(", ")}`);
    for (const f of t.failures) console.log(`  ${f}`);
  }
  console.log(`real processes: ${Math.min(viaProcess, counts.pipe)} .pipe and ${Math.min(viaProcess, counts.onnx)} .onnx cases, ${processFailures.length} failures`);
  for (const f of processFailures) console.log(`  ${f}`);
  console.log(`\ncommand: npx tsx bench/fuzz.ts --pipe ${counts.pipe} --onnx ${counts.onnx} --seed ${seed}   (${((performance.now() - started) / 1000).toFixed(0)} s)`);
  process.exitCode = failed ? 1 : 0;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
