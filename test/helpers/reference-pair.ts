// Test support: the reference Llama export as a target and the GPT-2 export (same 384-token
// vocabulary, a different family, so it is often wrong) as its draft, opened once per suite.
import { join } from "node:path";
import { afterAll, beforeAll } from "vitest";
import { DecoderModel, type DecoderOptions } from "../../runtime/decoder.ts";
import { REFERENCE_DIR } from "./runtime-models.ts";

/** One reference export (test/fixtures/reference/<name>) on one CPU thread. */
export function openReference(name: string, options: DecoderOptions = {}): Promise<DecoderModel> {
  return DecoderModel.open(join(REFERENCE_DIR, name, "model.onnx"), { device: "cpu", threads: 1, ...options });
}

/** Opens the pair before the suite's tests and releases it after; read `target` and `draft` inside tests. */
export function referencePair(): { target: DecoderModel; draft: DecoderModel } {
  const pair = {} as { target: DecoderModel; draft: DecoderModel };
  beforeAll(async () => {
    pair.target = await openReference("llama-torchscript");
    pair.draft = await openReference("gpt2-torchscript");
  });
  afterAll(async () => {
    await pair.target?.release();
    await pair.draft?.release();
  });
  return pair;
}
