// Runs one fuzz case through pipec's commands, in this process, and says what went wrong:
// an exit code other than 0, 1 or 2, a stack trace, more than the error's own lines, output left
// behind by a failed command, an input that changed, or a command slower than the hang limit.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { main } from "../../compiler/cli/main.ts";
import { loadModel } from "../../graph/onnx/index.ts";
import { BESIDE_FILE, type OnnxCase } from "./onnx-mutator.ts";
import type { PipeCase } from "./pipe-mutator.ts";

export const HANG_MS = 10_000;

export interface CaseOutcome {
  name: string;
  /** Per command: its exit code. */
  codes: Record<string, number>;
  problems: string[];
  ms: number;
}

interface Captured {
  code: number;
  out: string;
  err: string;
  ms: number;
}

async function pipec(args: string[]): Promise<Captured> {
  let [out, err] = ["", ""];
  const start = performance.now();
  const code = await main(args, { out: (t) => void (out += t), err: (t) => void (err += t) });
  return { code, out, err, ms: performance.now() - start };
}

const GPU_NOTICE = /^pipec: no GPU provider loaded/;

function hashFiles(dir: string): string {
  const h = createHash("sha256");
  for (const name of readdirSync(dir).sort()) h.update(name).update(readFileSync(join(dir, name)));
  return h.digest("hex");
}

/** The checks every command's result must pass; `oneLine`: a failure is exactly one `pipec:` line. */
function judge(command: string, r: Captured, oneLine: boolean, problems: string[]): void {
  if (![0, 1, 2].includes(r.code)) problems.push(`${command}: exit ${r.code}: ${r.err.split("\n")[0]}`);
  if (/^\s+at .*[:(]\d+/m.test(r.err) || /^\s+at /m.test(r.out)) problems.push(`${command}: stack trace: ${r.err.split("\n")[0]}`);
  if (r.ms > HANG_MS) problems.push(`${command}: took ${Math.round(r.ms)} ms`);
  if (r.code === 0) return;
  const lines = r.err.trimEnd().split("\n").filter((l) => !GPU_NOTICE.test(l));
  if (oneLine && (lines.length !== 1 || !lines[0]!.startsWith("pipec: "))) problems.push(`${command}: ${lines.length} lines on stderr: ${lines.slice(0, 2).join(" | ").slice(0, 200)}`);
  if (oneLine && r.out !== "") problems.push(`${command}: failed after printing to stdout`);
}

/** .pipe diagnostics: `file:line:col: error: ...` blocks with their source line and caret, at most 20 and a count. */
function judgeDiagnostics(command: string, r: Captured, problems: string[]): void {
  judge(command, r, false, problems);
  if (r.code === 0) return;
  const shown = r.err.match(/^\S.*?:\d+:\d+: (error|warning): /gm)?.length ?? 0;
  if (shown > 20) problems.push(`${command}: ${shown} diagnostics shown, more than 20`);
  const stray = r.err.split("\n").filter((l) => l && !/^(\S.*?: (error|warning): |  |pipec: |\S.*?: \d+ errors?$|\S.*?: and \d+ more problems?$|\S.*?: not compiled; )/.test(l));
  if (stray.length) problems.push(`${command}: unexpected stderr line: ${stray[0]!.slice(0, 160)}`);
}

/** check and fmt on a mutated .pipe; compile too when `compile` (it writes a folder, so it is the slow part). */
export async function runPipeCase(c: PipeCase, dir: string, opts: { compile: boolean }): Promise<CaseOutcome> {
  const start = performance.now();
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "case.pipe");
  writeFileSync(file, c.bytes);
  const before = hashFiles(dir);
  const problems: string[] = [];
  const codes: Record<string, number> = {};
  const check = await pipec(["check", file]);
  judgeDiagnostics("check", check, problems);
  codes.check = check.code;
  const fmt = await pipec(["fmt", file]);
  judgeDiagnostics("fmt", fmt, problems);
  codes.fmt = fmt.code;
  if (opts.compile) {
    const out = join(dir, "out");
    const compile = await pipec(["compile", file, "-o", out]);
    judgeDiagnostics("compile", compile, problems);
    codes.compile = compile.code;
    if (compile.code !== 0 && existsSync(out)) problems.push("compile: failed but left its output folder");
    if (compile.code === 0 && !existsSync(join(out, "driver.ts"))) problems.push("compile: succeeded without a driver.ts");
    rmSync(out, { recursive: true, force: true });
  }
  if (hashFiles(dir) !== before) problems.push("the input changed");
  return { name: c.name, codes, problems, ms: performance.now() - start };
}

/** inspect, ir and opt on a mutated model; generate too when `generate` (onnxruntime). */
export async function runOnnxCase(c: OnnxCase, dir: string, opts: { generate: boolean }): Promise<CaseOutcome> {
  const start = performance.now();
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, "in"), { recursive: true });
  const model = join(dir, "in", "model.onnx");
  writeFileSync(model, c.bytes);
  writeFileSync(join(dir, "in", BESIDE_FILE), new Uint8Array(64).fill(7));
  const before = hashFiles(join(dir, "in"));
  const problems: string[] = [];
  const codes: Record<string, number> = {};
  const run = async (command: string, args: string[]) => {
    const r = await pipec(args);
    judge(command, r, true, problems);
    codes[command] = r.code;
    return r;
  };
  await run("inspect", ["inspect", model, "--json"]);
  await run("ir", ["ir", model]);
  const out = join(dir, "out.onnx");
  const opt = await run("opt", ["opt", model, "-o", out, "--passes", "toposort,dce,cse", "--verify-each"]);
  if (opt.code !== 0 && existsSync(out)) problems.push("opt: failed but left its output");
  if (opt.code === 0) {
    try {
      loadModel(out);
    } catch (e) {
      problems.push(`opt: wrote a model that does not load: ${(e as Error).message.slice(0, 160)}`);
    }
  }
  if (opts.generate) await run("generate", ["generate", model, "--ids", "1,2", "--max-tokens", "2", "--device", "cpu"]);
  if (hashFiles(join(dir, "in")) !== before) problems.push("the input changed");
  return { name: c.name, codes, problems, ms: performance.now() - start };
}
