/**
 * A real-size export end to end (issue 13 part 6): the 836M Llama that `torch.onnx.export`
 * writes with its defaults (tools/export_matrix.py --size 836m), side by side in one run with
 * onnxscript's `optimize_for_ort` and onnxruntime's own Python loop.
 *
 * 1. `pipec inspect --json`: the attention layers found, against the export's expected count.
 * 2. A one-stage .pipe per method (attention: tidal, attention: tokenselect, kv: streaming,
 *    speculate: recycle) compiled by the bundled CLI (rebuilt first) in a child process each
 *    (bench/real-export-compile-child.mjs):
 *    wall and CPU time, the part of it spent copying the unchanged external weight file into the
 *    output folder (I/O, timed around each copyFileSync), the compiler's own time (the rest), peak
 *    RSS, and what the output's data file is. Then the same compile through the CLI
 *    (`pipec compile`) under /usr/bin/time, what a user sees; and the same passes through
 *    `pipec opt` with the output beside the input (its data file is referenced, not copied), the
 *    best of three: the compiler alone, as a process.
 * 3. `optimize_for_ort` on the same model (bench/ort_baseline.py optimize): time and peak RSS.
 * 4. Greedy decode, cold (a fresh process's first generation) and warm (its second): pipec's
 *    runtime on the export and on each compiled pipeline, against onnxruntime's Python loop on
 *    the export and on optimize_for_ort's output (bench/ort_baseline.py decode).
 *
 * Usage: npx tsx bench/real-export.ts [--model bench/models/llama-836m] [--prompt 64] [--new 16]
 *        [--threads 2] [--skip-decode] [--json bench/results/real-export.json]
 * The model: python tools/export_matrix.py --size 836m --out bench/models/llama-836m
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { freemem, loadavg, totalmem } from "node:os";
import { dirname, join, resolve } from "node:path";
import type { DecodeChildResult, DecodeRun } from "./real-export-decode-child.ts";

const ROOT = resolve(import.meta.dirname, "..");
const args = process.argv.slice(2);
const option = (name: string, fallback: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : fallback);
const MODEL_DIR = resolve(option("--model", join(ROOT, "bench/models/llama-836m")));
const MODEL = join(MODEL_DIR, "model.onnx");
const PROMPT = Number(option("--prompt", "64"));
const NEW = Number(option("--new", "16"));
const THREADS = Number(option("--threads", "2"));
const WORK = join(ROOT, "bench/models", `real-export-${MODEL_DIR.split("/").pop()}`);
const ORT_MODEL = join(WORK, "optimize-for-ort", "model.onnx");
const PIPEC = join(ROOT, "bin/pipec.mjs");

// Budgets for a context of PROMPT + NEW tokens: each sparse method attends to about half of it.
const METHODS: Record<string, string> = {
  tidal: "attention: tidal(top_k: 50%)",
  tokenselect: `attention: tokenselect(top_k: ${Math.max(16, (PROMPT + NEW) >> 1)}, sinks: 4, window: 8)`,
  streaming: `kv: streaming(sinks: 4, window: ${Math.max(12, ((PROMPT + NEW) >> 1) - 4)})`,
  recycle: "speculate: recycle(top_k: 8)",
};

if (!existsSync(MODEL)) {
  process.stderr.write(`no model at ${MODEL}: python tools/export_matrix.py --size 836m --out ${MODEL_DIR}\n`);
  process.exit(1);
}

const machine = () => ({ loadavg: loadavg().map((l) => Number(l.toFixed(2))), freeGiB: Number((freemem() / 2 ** 30).toFixed(1)), totalGiB: Number((totalmem() / 2 ** 30).toFixed(1)) });
const log = (line: string) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);
const results: Record<string, unknown> = { date: new Date().toISOString(), model: MODEL, prompt: PROMPT, newTokens: NEW, threads: THREADS, machineBefore: machine() };

/** Runs a command under /usr/bin/time -v: its stdout, wall ms, CPU ms and peak RSS (MiB). */
function timed(cmd: string, argv: string[]): { stdout: string; wallMs: number; cpuMs: number; maxRssMiB: number } {
  const start = performance.now();
  const r = spawnSync("/usr/bin/time", ["-v", cmd, ...argv], { cwd: ROOT, encoding: "utf8", maxBuffer: 1 << 28 });
  const wallMs = performance.now() - start;
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(" ")} failed (${r.status}):\n${r.stderr.slice(-3000)}`);
  const field = (name: string) => Number(new RegExp(`${name}: ([\\d.]+)`).exec(r.stderr)?.[1] ?? NaN);
  return { stdout: r.stdout, wallMs, cpuMs: (field("User time \\(seconds\\)") + field("System time \\(seconds\\)")) * 1000, maxRssMiB: field("Maximum resident set size \\(kbytes\\)") / 1024 };
}

const tsxChild = (script: string, argv: string[]) => JSON.parse(execFileSync(process.execPath, ["--import", "tsx", join(ROOT, "bench", script), ...argv], { cwd: ROOT, encoding: "utf8", maxBuffer: 1 << 28 }).trim().split("\n").pop()!);

mkdirSync(WORK, { recursive: true });
// The compile is measured as users run it: the bundled CLI (bin/pipec.mjs runs it while it is fresh).
execFileSync(process.execPath, [join(ROOT, "tools/build.mjs")], { cwd: ROOT, stdio: "inherit" });
const expected = JSON.parse(readFileSync(join(MODEL_DIR, "expected.json"), "utf8")) as { expected_attention_layers: number; parameters: number };

// 1. inspect
log("inspect");
const inspect = timed(process.execPath, [PIPEC, "inspect", "--json", MODEL]);
const summary = JSON.parse(inspect.stdout) as { nodeCount: number; initializers: { bytes: number; externalBytes: number }; attention: { layers: number; forms: Record<string, number>; unrecognised: unknown[] } };
results.inspect = { layers: summary.attention.layers, expected: expected.expected_attention_layers, forms: summary.attention.forms, unrecognised: summary.attention.unrecognised.length, nodes: summary.nodeCount, weightBytes: summary.initializers.bytes, externalBytes: summary.initializers.externalBytes, wallMs: inspect.wallMs, cpuMs: inspect.cpuMs, maxRssMiB: inspect.maxRssMiB };
log(`inspect: ${summary.attention.layers}/${expected.expected_attention_layers} layers`);

// 2. compile
const compiles: Record<string, unknown> = {};
for (const [name, line] of Object.entries(METHODS)) {
  const pipe = join(WORK, `${name}.pipe`);
  writeFileSync(pipe, `pipeline real_${name} {\n  model llm = onnx("${MODEL}")\n  tokenizer tok = ids\n\n  stage decode = generate(llm, tok) {\n    ${line}\n    max_tokens: ${NEW}\n  }\n}\n`);
  log(`compile ${name} (in-process child)`);
  const child = JSON.parse(execFileSync(process.execPath, [join(ROOT, "bench/real-export-compile-child.mjs"), pipe, join(WORK, `out-${name}`)], { cwd: ROOT, encoding: "utf8" }).trim());
  log(`compile ${name} (CLI)`);
  const cliOut = join(WORK, `cli-${name}`);
  const cli = timed(process.execPath, [PIPEC, "compile", pipe, "-o", cliOut, "--force", "--json"]);
  rmSync(cliOut, { recursive: true, force: true });
  // The same passes through `pipec opt` with the output beside the input: the data file is
  // referenced (reused), nothing copied, so the process's time is the compiler's alone.
  const manifest = JSON.parse(readFileSync(join(WORK, `out-${name}`, "manifest.json"), "utf8")) as { passes: { pass: string; options: Record<string, string> }[] };
  const passes = manifest.passes.map((p) => (Object.keys(p.options).length ? `${p.pass}(${Object.entries(p.options).map(([k, v]) => `${k}=${v}`).join(",")})` : p.pass)).join(",");
  const beside = join(MODEL_DIR, `model.${name}.onnx`);
  const opts = [0, 1, 2].map(() => {
    log(`opt beside the input: ${name}`);
    const run = timed(process.execPath, [PIPEC, "opt", MODEL, "-o", beside, "--passes", passes, "--json"]);
    rmSync(beside, { force: true });
    return { wallMs: run.wallMs, cpuMs: run.cpuMs, maxRssMiB: run.maxRssMiB, externalFiles: (JSON.parse(run.stdout) as { externalFiles: { how: string }[] }).externalFiles.map((f) => f.how) };
  });
  const best = opts.reduce((a, b) => (b.cpuMs < a.cpuMs ? b : a));
  compiles[name] = { method: line, child, cli: { wallMs: cli.wallMs, cpuMs: cli.cpuMs, maxRssMiB: cli.maxRssMiB }, optBeside: { passes, runs: opts, best } };
}
results.compile = compiles;
results.cliBundled = existsSync(join(ROOT, "dist/BUILT"));

// 3. optimize_for_ort
log("optimize_for_ort");
mkdirSync(dirname(ORT_MODEL), { recursive: true });
const ortOpt = timed("python3", [join(ROOT, "bench/ort_baseline.py"), "optimize", MODEL, ORT_MODEL]);
results.optimizeForOrt = { ...JSON.parse(ortOpt.stdout.trim().split("\n").pop()!), processWallMs: ortOpt.wallMs, processCpuMs: ortOpt.cpuMs, processMaxRssMiB: ortOpt.maxRssMiB };

// 4. decode
if (!args.includes("--skip-decode")) {
  const decode: Record<string, DecodeChildResult> = {};
  const n = [String(PROMPT), String(NEW), String(THREADS)];
  const variants: [string, () => DecodeChildResult][] = [
    ["onnxruntime Python loop, export", () => JSON.parse(execFileSync("python3", [join(ROOT, "bench/ort_baseline.py"), "decode", MODEL, ...n], { cwd: ROOT, encoding: "utf8" }).trim())],
    ["onnxruntime Python loop, optimize_for_ort", () => JSON.parse(execFileSync("python3", [join(ROOT, "bench/ort_baseline.py"), "decode", ORT_MODEL, ...n], { cwd: ROOT, encoding: "utf8" }).trim())],
    ["pipec runtime, export", () => tsxChild("real-export-decode-child.ts", ["runtime", MODEL, ...n])],
    ...Object.keys(METHODS).map((m): [string, () => DecodeChildResult] => [`pipec compiled, ${m}`, () => tsxChild("real-export-decode-child.ts", ["compiled", join(WORK, `out-${m}`), ...n])]),
  ];
  for (const [name, run] of variants) {
    log(`decode: ${name}`);
    decode[name] = run();
  }
  results.decode = decode;
}
results.machineAfter = machine();

const jsonOut = option("--json", "");
if (jsonOut) {
  mkdirSync(dirname(resolve(jsonOut)), { recursive: true });
  writeFileSync(jsonOut, JSON.stringify(results, null, 2) + "\n");
}
process.stdout.write(report(results) + "\n");

// ---- the report ------------------------------------------------------------------------------

function report(r: Record<string, any>): string {
  const f0 = (x: number) => x.toFixed(0);
  const f1 = (x: number) => x.toFixed(1);
  const f2 = (x: number) => x.toFixed(2);
  const out: string[] = [];
  out.push(`model: ${r.model} (${(expected.parameters / 1e6).toFixed(0)}M parameters, ${f0(r.inspect.weightBytes / 2 ** 20)} MiB of weights, ${r.inspect.nodes} nodes)`);
  out.push(`date: ${r.date}; load average before ${r.machineBefore.loadavg.join(" ")}, after ${r.machineAfter.loadavg.join(" ")}; free ${r.machineBefore.freeGiB} of ${r.machineBefore.totalGiB} GiB`);
  out.push(`prompt ${r.prompt} tokens, ${r.newTokens} new, ${r.threads} intra-op threads; CLI ${r.cliBundled ? "bundled (dist/)" : "through tsx"}`);
  out.push("");
  const i = r.inspect;
  out.push(`inspect: ${i.layers}/${i.expected} attention layers (${Object.entries(i.forms).map(([k, v]) => `${v} ${k}`).join(", ")}; ${i.unrecognised} unrecognised), ${f0(i.wallMs)} ms wall, ${f0(i.maxRssMiB)} MiB peak`);
  out.push("");
  out.push("| compile | compiler ms, wall / CPU | weight copy ms (wall) | copied MiB | peak RSS MiB | CLI process ms, wall / CPU | CLI peak RSS MiB | `pipec opt` beside the input, ms wall / CPU (best of 3) | its peak RSS MiB | its data file |");
  out.push("|---|---|---|---|---|---|---|---|---|---|");
  for (const c of Object.values<any>(r.compile)) {
    const b = c.optBeside.best;
    out.push(`| \`${c.method}\` | ${f0(c.child.compilerMs)} / ${f0(c.child.compilerCpuMs)} | ${f0(c.child.copyMs)} | ${f0(c.child.copiedBytes / 2 ** 20)} | ${f0(c.child.maxRssMiB)} | ${f0(c.cli.wallMs)} / ${f0(c.cli.cpuMs)} | ${f0(c.cli.maxRssMiB)} | ${f0(b.wallMs)} / ${f0(b.cpuMs)} | ${f0(b.maxRssMiB)} | ${b.externalFiles.join(", ")} |`);
  }
  const o = r.optimizeForOrt;
  out.push(`| \`optimize_for_ort\` (Python) | ${f0(o.loadMs + o.optimizeMs)} / - (load + optimize) | ${f0(o.saveMs)} (save: every weight rewritten) | ${f0(r.inspect.weightBytes / 2 ** 20)} | ${f0(o.maxRssMiB)} | ${f0(o.processWallMs)} / ${f0(o.processCpuMs)} | ${f0(o.processMaxRssMiB)} | | | fused: ${Object.entries(o.fused).map(([k, v]) => `${v} ${k.replace("com.microsoft::", "")}`).join(", ") || "none"} |`);
  if (r.decode) {
    out.push("");
    const base = r.decode["onnxruntime Python loop, export"] as DecodeChildResult;
    const same = (a: number[], b: number[]) => a.filter((t, k) => t === b[k]).length;
    out.push(`| decode (${r.prompt}-token prompt, ${r.newTokens} new) | load ms | cold prefill ms | cold tok/s | warm prefill ms | warm tok/s | warm tok/CPU-s | warm tok/s vs ORT Python loop | tokens = ORT loop's | peak RSS MiB |`);
    out.push("|---|---|---|---|---|---|---|---|---|---|");
    for (const [name, d] of Object.entries<DecodeChildResult>(r.decode)) {
      const row = (x: DecodeRun) => [f0(x.prefillMs), f2(x.decodeTokensPerSecond)];
      out.push(`| ${name} | ${f0(d.loadMs)} | ${row(d.cold).join(" | ")} | ${row(d.warm).join(" | ")} | ${f2(d.warm.tokensPerCpuSecond)} | ${f2(d.warm.decodeTokensPerSecond / base.warm.decodeTokensPerSecond)}x | ${same(d.warm.tokens, base.warm.tokens)}/${base.warm.tokens.length} | ${f0(d.peakRssMiB)} |`);
    }
    void f1;
  }
  return out.join("\n");
}
