// onnxruntime's own errors, caught from real sessions, become one clean line.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DecoderModel } from "./decoder.ts";
import { openSession } from "./device.ts";
import { isRuntimeError } from "./errors.ts";
import { cleanOrtMessage } from "./ort-message.ts";
import { caught } from "../test/helpers/caught.ts";
import { REFERENCE_DIR } from "../test/helpers/runtime-models.ts";

const MODEL = join(REFERENCE_DIR, "llama-torchscript/model.onnx");

function expectClean(line: string): void {
  expect(line).not.toMatch(/\n|\x1b|\.cc:\d+|onnxruntime::|\[ONNXRuntimeError\]/);
}

describe("cleanOrtMessage", () => {
  it("a model onnxruntime cannot load: the reason, without the C++ location and signature", async () => {
    const e = await caught(() => openSession(new Uint8Array([0x08, 0x07]), { device: "cpu" }));
    expect(isRuntimeError(e)).toBe(true);
    const message = (e as Error).message;
    expectClean(message);
    expect(message).toMatch(/^model: onnxruntime cannot load the model: .*graph/i);
  });

  it("a failed run: the node and its message, after the model's path", async () => {
    const model = await DecoderModel.open(MODEL, { device: "cpu" });
    try {
      // Past the vocabulary, below the Generator's own check: onnxruntime's Gather refuses it.
      const e = await caught(() => model.newSequence().forward([model.contract.vocabSize! + 5]));
      expect(isRuntimeError(e) && e.code).toBe("model-run-failed");
      const message = (e as Error).message;
      expectClean(message);
      expect(message).toMatch(/llama-torchscript\/model\.onnx: onnxruntime failed to run the model: Gather node.*out of (data )?bounds/);
    } finally {
      await model.release();
    }
  });

  it("strips ANSI colours and the logger's prefix", () => {
    const logged = "\x1b[1;31m2026-12-07 20:02:46.79 [E:onnxruntime:, sequential_executor.cc:671 ExecuteKernel] Non-zero status code returned while running Gather node. Name:'g' Status Message: idx=99\x1b[m";
    expect(cleanOrtMessage(new Error(logged))).toBe("Gather node 'g': idx=99");
  });
});
