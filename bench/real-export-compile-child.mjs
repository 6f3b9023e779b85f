/**
 * One `pipec compile` in its own process (peak RSS is per process), for bench/real-export.ts: the
 * bundled CLI's main (dist/, what `pipec` runs; `node tools/build.mjs` makes it), called in this
 * process so that its parts can be timed. Plain JavaScript, so that no TypeScript loader runs.
 * The output folder is removed before the clock starts. Prints one JSON line: wall and CPU ms of
 * the compile, the wall and CPU ms spent copying external weight files (fs.copyFileSync, timed
 * around each call), the compiler's own time (the compile without those copies), peak RSS, the
 * passes run and the output's data files.
 *
 * Usage: node bench/real-export-compile-child.mjs <file.pipe> <outDir> [clone|copy]
 */
import fs from "node:fs";
import { syncBuiltinESMExports } from "node:module";
import { join } from "node:path";

const [pipe, outDir, externalFiles = "clone"] = process.argv.slice(2);
const processStartCpu = process.cpuUsage();

// save.ts imports copyFileSync from node:fs; patching the builtin and syncing its ESM exports lets
// this process time every whole-file copy the compile makes, without touching the compiler.
const copies = [];
const copyFileSync = fs.copyFileSync;
fs.copyFileSync = (src, dest, mode) => {
  const t = performance.now();
  const c = process.cpuUsage();
  let copied = false;
  try {
    copyFileSync(src, dest, mode);
    copied = true;
  } finally {
    // A clone refused (ext4 has none) is timed too, but its bytes are counted once, by the copy that follows.
    const cpu = process.cpuUsage(c);
    copies.push({ ms: performance.now() - t, cpuMs: (cpu.user + cpu.system) / 1000, bytes: copied ? fs.statSync(src).size : 0 });
  }
};
syncBuiltinESMExports();

fs.rmSync(outDir, { recursive: true, force: true });
const startCpu = process.cpuUsage();
const start = performance.now();
const { main } = await import("../dist/main.js");
const code = await main(["compile", pipe, "-o", outDir, "--external-files", externalFiles], { out: () => {}, err: (s) => process.stderr.write(s) });
const wallMs = performance.now() - start;
const cpu = process.cpuUsage(startCpu);
if (code !== 0) process.exit(code);
const manifest = JSON.parse(fs.readFileSync(join(outDir, "manifest.json"), "utf8"));
const copyMs = copies.reduce((n, c) => n + c.ms, 0);
const copyCpuMs = copies.reduce((n, c) => n + c.cpuMs, 0);
const cpuMs = (cpu.user + cpu.system) / 1000;
const dataFiles = fs
  .readdirSync(join(outDir, "models"))
  .flatMap((m) => fs.readdirSync(join(outDir, "models", m)).filter((f) => f.endsWith(".data")).map((f) => join(outDir, "models", m, f)))
  .map((f) => ({ file: f, bytes: fs.statSync(f).size, links: fs.statSync(f).nlink }));
const startup = process.cpuUsage(processStartCpu);
process.stdout.write(
  JSON.stringify({
    wallMs,
    cpuMs,
    copyMs,
    copyCpuMs,
    copiedBytes: copies.reduce((n, c) => n + c.bytes, 0),
    compilerMs: wallMs - copyMs,
    compilerCpuMs: cpuMs - copyCpuMs,
    processCpuMs: (startup.user + startup.system) / 1000,
    maxRssMiB: process.resourceUsage().maxRSS / 1024,
    passes: manifest.passes.map((p) => `${p.pass}${p.changed ? "" : " (unchanged)"}`),
    dataFiles,
  }) + "\n",
);
