// Measures the KV cache designs on one zoo Llama (4 layers, 8 KV heads x D 32, 512 tokens):
//   reference  - the plain loop (test/helpers/reference-loop.ts): present fed back as past,
//                mask and positions rebuilt from JS arrays each step
//   present    - the runtime on the same model: present tensors kept as they are
//   append     - the runtime on the model rewritten by the kv-append-only pass to output only
//                new rows (present_new.*), into a preallocated buffer the runtime owns
// bench/runtime.ts supersedes this with every variant in its own process.
// Run: npx tsx test/runtime-kv-modes.bench.ts [tokens]   (a script, not part of `vitest run`)
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadModel, saveModel } from "../graph/onnx/index.ts";
import { llamaConfig, writeZooModel } from "../graph/zoo/index.ts";
import { createKvAppendOnly } from "../passes/kv/kv-append-only.ts";
import { DecoderModel } from "../runtime/decoder.ts";
import { Generator } from "../runtime/generate.ts";
import { greedyReference } from "./helpers/reference-loop.ts";

const tokens = Number(process.argv[2] ?? 512);
const dir = mkdtempSync(join(tmpdir(), "pipec-kv-bench-"));
try {
  const config = llamaConfig({ hidden: 256, heads: 8, kvHeads: 8, layers: 4, intermediate: 512, vocabSize: 512, maxPositions: 2048, seed: 5 });
  const { modelPath } = writeZooModel(config, join(dir, "present"));
  const appendPath = join(dir, "append", "model.onnx");
  const model = loadModel(modelPath);
  // The plain rewrite (attention still over the Concat), as this bench has always measured; bench/runtime.ts compares both.
  createKvAppendOnly().run(model, { options: { split_attention: false }, note: () => {} });
  saveModel(model, appendPath);

  const prompt = [1, 2, 3, 4, 5, 6, 7, 8];
  let start = performance.now();
  const expected = await greedyReference(modelPath, prompt, tokens);
  console.log(`reference  ${(performance.now() - start).toFixed(0)} ms total`);
  for (const [name, path] of [["present", modelPath], ["append", appendPath]] as const) {
    const decoder = await DecoderModel.open(path, { device: "cpu", threads: 1 });
    start = performance.now();
    const { tokens: got, stats } = await new Generator(decoder).run(prompt, { maxTokens: tokens, eosTokenIds: [] });
    const total = performance.now() - start;
    const same = got.join() === expected.join() ? "same tokens" : "DIFFERENT TOKENS";
    console.log(`${name.padEnd(10)} ${total.toFixed(0)} ms total, ${stats.decodeTokensPerSecond.toFixed(0)} tok/s, session ${stats.sessionRunMs.toFixed(0)} ms, host ${stats.hostMs.toFixed(0)} ms, peak KV ${(stats.peakKvBytes / 2 ** 20).toFixed(1)} MiB, ${same}`);
    await decoder.release();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
