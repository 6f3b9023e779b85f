/**
 * Foundation benchmark (issue 2): does pipec's cost follow the graph, not the weights?
 *
 *   npx tsx bench/foundation.ts            all three tables
 *   npx tsx bench/foundation.ts --quick    skips the 1 GB and 100k-node rows and the Llama model
 *
 * 1. load and load+save time and peak RSS against weight bytes (10 MB, 100 MB, 1 GB; inline and
 *    external), graph fixed at ~100 nodes;
 * 2. `optimize --passes dce,cse` against node count (1k, 10k, 100k), weights fixed at 1 MB;
 * 3. a Llama-shaped zoo model (~800M parameters, 16 layers, external weights) through the CLI,
 *    `pipec opt --passes dce,cse`, wall time of the whole command and its peak RSS.
 * Every measurement runs in its own process (peak RSS is per process). Models are written under
 * bench/models/synthetic (git-ignored) and reused.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { BENCH_ZOO, ensureBenchModel } from "./zoo.ts";
import { writeSyntheticModel } from "./synthetic-model.ts";

const ROOT = join(import.meta.dirname, "..");
const DIR = join(import.meta.dirname, "models", "synthetic");
const OUT = join(DIR, "out");
const quick = process.argv.includes("--quick");
const MB = 1e6;

function child(script: string, ...args: string[]): Record<string, number> {
  const out = execFileSync(process.execPath, ["--import", "tsx", join(ROOT, "bench", script), ...args], { cwd: ROOT, encoding: "utf8", maxBuffer: 1 << 26 });
  return JSON.parse(out.trim().split("\n").pop()!);
}

function model(name: string, spec: Parameters<typeof writeSyntheticModel>[1]): string {
  const path = join(DIR, name, "model.onnx");
  if (!existsSync(path)) writeSyntheticModel(path, spec);
  return path;
}

function table(title: string, header: string[], rows: (string | number)[][]): void {
  console.log(`\n${title}\n`);
  const cells = [header, ...rows.map((r) => r.map((c) => (typeof c === "number" ? c.toFixed(c < 10 ? 2 : 0) : c)))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => String(r[i]).length)));
  const line = (r: (string | number)[]) => `| ${r.map((c, i) => String(c).padEnd(widths[i]!)).join(" | ")} |`;
  console.log(line(cells[0]!));
  console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
  for (const r of cells.slice(1)) console.log(line(r));
}

mkdirSync(OUT, { recursive: true });

// 1. weights
const sizes = quick ? [10, 100] : [10, 100, 1000];
const ioRows: (string | number)[][] = [];
for (const external of [false, true]) {
  for (const mb of sizes) {
    const path = model(`w${mb}mb-${external ? "ext" : "inline"}`, { weightBytes: mb * MB, nodes: 100, external });
    const load = child("measure-child.ts", "load", path);
    const out = join(OUT, `w${mb}-${external ? "ext" : "inline"}`, "model.onnx");
    const save = child("measure-child.ts", "save", path, out);
    ioRows.push([`${mb} MB`, external ? "external" : "inline", load.seconds * 1000, load.maxRssMiB, save.seconds * 1000, save.maxRssMiB]);
    rmSync(join(OUT, `w${mb}-${external ? "ext" : "inline"}`), { recursive: true, force: true });
  }
}
table("1. load / load+save against weight bytes (~100 nodes)", ["weights", "where", "load ms", "load RSS MiB", "load+save ms", "load+save RSS MiB"], ioRows);

// 2. nodes
const counts = quick ? [1000, 10000] : [1000, 10000, 100000];
const nodeRows: (string | number)[][] = [];
for (const nodes of counts) {
  const path = model(`n${nodes}`, { weightBytes: 1 * MB, nodes, external: false });
  const r = child("opt-child.ts", path, join(OUT, `n${nodes}.onnx`), "dce,cse");
  nodeRows.push([nodes, r.loadMs, r.passMs, r.saveMs, r.totalMs, (r.totalMs * 1000) / nodes, r.maxRssMiB]);
}
table("2. optimize --passes dce,cse against node count (1 MB of weights)", ["nodes", "load ms", "passes ms", "save ms", "total ms", "µs / node", "RSS MiB"], nodeRows);

// 3. the Llama-shaped model through the CLI
if (!quick) {
  const size = BENCH_ZOO["800m"] ? "800m" : "1b";
  const input = ensureBenchModel(size);
  const output = join(OUT, "llama", "model.onnx");
  rmSync(join(OUT, "llama"), { recursive: true, force: true });
  const inProcess = child("opt-child.ts", input, output, "dce,cse");
  rmSync(join(OUT, "llama"), { recursive: true, force: true });
  // The bundled CLI, as `npm ci` installs it (bin/pipec.mjs would fall back to compiling the
  // TypeScript sources on the fly whenever a source file is newer than the bundle).
  execFileSync(process.execPath, [join(ROOT, "tools/build.mjs")], { cwd: ROOT });
  const cli = `const { main } = await import("./dist/main.js"); process.exitCode = await main(process.argv.slice(1));`;
  // /usr/bin/time reports on stderr; the command's own output is dropped.
  const timed = execFileSync("bash", ["-c", `/usr/bin/time -f '%e %M' '${process.execPath}' --input-type=module -e '${cli}' opt '${input}' -o '${output}' --passes dce,cse 2>&1 >/dev/null | tail -1`], {
    cwd: ROOT,
    encoding: "utf8",
  });
  const [wall, rssKb] = timed.trim().split(/\s+/).map(Number);
  table(`3. zoo Llama '${size}' (${inProcess.nodes} nodes) through pipec opt --passes dce,cse`, ["measure", "value"], [
    ["CLI wall s (bundled CLI, process start to exit)", wall!],
    ["CLI peak RSS MiB", rssKb! / 1024],
    ["in-process load ms", inProcess.loadMs],
    ["in-process passes ms", inProcess.passMs],
    ["in-process save ms", inProcess.saveMs],
    ["external data", JSON.stringify(inProcess.externalFiles)],
  ]);
}

console.log(`\ncommand: npx tsx bench/foundation.ts${quick ? " --quick" : ""}`);
