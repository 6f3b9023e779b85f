/**
 * One `optimize` (load, toposort, passes, save) in its own process, printing timings and peak RSS
 * as JSON: peak RSS is per process, so each measurement gets one.
 * Usage: tsx bench/opt-child.ts <in.onnx> <out.onnx> [passes]
 */
import { optimize } from "../compiler/api.ts";
import { loadModel } from "../graph/onnx/index.ts";

const [input, output, passes = ""] = process.argv.slice(2);
const start = performance.now();
const report = optimize({ input: input!, output: output!, passes });
const totalMs = performance.now() - start;
const passMs = report.passes.reduce((n, p) => n + p.ms, 0);
process.stdout.write(
  JSON.stringify({
    loadMs: report.loadMs,
    passMs,
    saveMs: report.saveMs,
    totalMs,
    maxRssMiB: process.resourceUsage().maxRSS / 1024,
    externalFiles: report.save.externalFiles,
    nodes: loadModel(output!).graph.nodeCount,
  }) + "\n",
);
