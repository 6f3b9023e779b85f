/**
 * Runs one load(+save) in this process and prints `{ seconds, maxRssMiB }` as JSON: peak RSS is a
 * per-process figure, so every measurement gets its own process.
 * Usage: tsx bench/measure-child.ts <load|save> <in.onnx> [out.onnx]
 */
import { loadModel, saveModel } from "../graph/onnx/index.ts";

const [mode, input, output] = process.argv.slice(2);
const start = performance.now();
const model = loadModel(input!);
let nodes = model.graph.nodeCount;
if (mode === "save") nodes = saveModel(model, output!).modelBytes;
const seconds = (performance.now() - start) / 1000;
process.stdout.write(JSON.stringify({ seconds, maxRssMiB: process.resourceUsage().maxRSS / 1024, nodes }) + "\n");
