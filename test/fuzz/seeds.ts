// What the mutators start from: the example pipelines (their relative paths made absolute, so a
// mutated copy elsewhere still names real models) and small decoders in each attention encoding.
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { ENCODINGS, buildZooModel, gpt2Config, llamaConfig } from "../../graph/zoo/index.ts";
import { matmulIfModel } from "../helpers/handmade-models.ts";
import { modelToBytes } from "../helpers/zoo-decode.ts";
import type { OnnxSeed } from "./onnx-mutator.ts";
import type { PipeSeed } from "./pipe-mutator.ts";

const EXAMPLES = resolve(import.meta.dirname, "../../examples");

export function pipeSeeds(): PipeSeed[] {
  return readdirSync(EXAMPLES)
    .filter((f) => f.endsWith(".pipe"))
    .sort()
    .map((name) => ({
      name,
      text: readFileSync(join(EXAMPLES, name), "utf8").replace(/"(\.{1,2}\/[^"]*)"/g, (_, path: string) => JSON.stringify(resolve(EXAMPLES, path))),
    }));
}

export function onnxSeeds(): OnnxSeed[] {
  const tiny = { layers: 1, hidden: 16, heads: 2, vocabSize: 32, maxPositions: 16, intermediate: 32 };
  return [
    ...ENCODINGS.map((encoding) => ({ name: `llama-${encoding}`, bytes: modelToBytes(buildZooModel(llamaConfig({ ...tiny, kvHeads: 1 }), { encoding })) })),
    { name: "gpt2-decomposed", bytes: modelToBytes(buildZooModel(gpt2Config(tiny))) },
    { name: "matmul-if", bytes: modelToBytes(matmulIfModel()) },
  ];
}
