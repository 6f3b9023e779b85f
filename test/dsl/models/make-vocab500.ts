// Writes vocab500.onnx: the I/O signature of a 2-layer decoder with a 500-token vocabulary (the
// reference models have 384), so the corpus can test the draft-vocabulary check. It computes
// nothing meaningful; only its declared inputs and outputs matter. Run: npx tsx test/dsl/models/make-vocab500.ts
import { Builder, DataType, Model } from "../../../graph/ir/index.ts";
import { saveModel } from "../../../graph/onnx/index.ts";

const model = new Model();
const b = new Builder(model.graph);
const ids = b.input("input_ids", DataType.INT64, ["B", "S"]);
b.output(b.op.Cast!(ids, { to: DataType.FLOAT }), "logits", { kind: "tensor", dtype: DataType.FLOAT, shape: ["B", "S", 500] });
for (const layer of [0, 1]) {
  for (const part of ["key", "value"]) {
    const past = b.input(`past_key_values.${layer}.${part}`, DataType.FLOAT, ["B", 2, "P", 16]);
    b.output(b.op.Identity!(past), `present.${layer}.${part}`);
  }
}
saveModel(model, new URL("vocab500.onnx", import.meta.url).pathname);
