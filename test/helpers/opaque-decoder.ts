import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Builder } from "../../graph/ir/builder.ts";
import { DataType } from "../../graph/ir/dtype.ts";
import { Model } from "../../graph/ir/model.ts";
import { tensorType } from "../../graph/ir/types.ts";
import { saveModel } from "../../graph/onnx/index.ts";

/**
 * A decoder with a KV cache in Optimum's convention whose layers mix the cache by a mean over its
 * rows instead of attention: it runs on the runtime (greedy tokens depend on the whole context),
 * but pipec recognises no attention layer in it, so no attention request can be placed on it.
 * Written to `dir/model.onnx` with a config.json; returns the model's path.
 */
export function writeOpaqueDecoder(dir: string, { layers = 2, vocab = 32, width = 4 } = {}): string {
  const model = new Model({ opsets: { "": 17 } });
  const b = new Builder(model.graph);
  const ids = b.input("input_ids", DataType.INT64, ["B", "S"]);
  const table = b.float32(Array.from({ length: vocab * width }, (_, i) => Math.sin(i * 0.7)), [vocab, width]);
  let h = b.op.Gather(table, ids, { axis: 0 }); // [B, S, W]
  for (let i = 0; i < layers; i++) {
    const rows = b.op.Unsqueeze(b.op.Mul(h, b.float32(1 + i)), b.int64([1])); // [B, 1, S, W]
    for (const part of ["key", "value"]) {
      const past = b.input(`past_key_values.${i}.${part}`, DataType.FLOAT, ["B", 1, "P", width]);
      const present = b.output(b.op.Concat(past, rows, { axis: 2 }), `present.${i}.${part}`, tensorType(DataType.FLOAT, ["B", 1, "T", width]));
      if (part === "value") h = b.op.Add(h, b.op.Squeeze(b.op.ReduceMean(present, { axes: [2], keepdims: 1 }), b.int64([1])));
    }
  }
  const mix = b.float32(Array.from({ length: width * vocab }, (_, i) => Math.cos(i * 1.3)), [width, vocab]);
  b.output(b.op.MatMul(h, mix), "logits", tensorType(DataType.FLOAT, ["B", "S", vocab]));
  mkdirSync(dir, { recursive: true });
  const path = join(dir, "model.onnx");
  saveModel(model, path);
  writeFileSync(join(dir, "config.json"), JSON.stringify({ max_position_embeddings: 256, vocab_size: vocab }));
  return path;
}
