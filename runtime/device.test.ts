import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { missingRequirement, openSession } from "./device.ts";
import { isRuntimeError } from "./errors.ts";
import { caught } from "../test/helpers/caught.ts";
import { REFERENCE_DIR } from "../test/helpers/runtime-models.ts";

const MODEL = join(REFERENCE_DIR, "llama-torchscript/model.onnx");

describe("devices", () => {
  it("cpu opens with threads and an optimisation level", async () => {
    const { session, device } = await openSession(MODEL, { device: "cpu", threads: 1, graphOptimizationLevel: "basic" });
    expect(device).toBe("cpu");
    expect(session.inputNames).toContain("input_ids");
    await session.release();
  });

  // On a machine without GPU providers (this project's CI) auto must fall back with one line.
  const gpuMissing = missingRequirement("cuda") !== undefined && missingRequirement("webgpu") !== undefined;
  it.skipIf(!gpuMissing)("auto falls back to cpu with exactly one line saying why", async () => {
    const notices: string[] = [];
    const { session, device } = await openSession(MODEL, { device: "auto", onNotice: (line) => notices.push(line) });
    expect(device).toBe("cpu");
    expect(notices).toHaveLength(1);
    expect(notices[0]).not.toContain("\n");
    expect(notices[0]).toMatch(/cuda: .*libonnxruntime_providers_cuda\.so/);
    expect(notices[0]).toMatch(/webgpu: .*libvulkan\.so\.1/);
    expect(notices[0]).toMatch(/running on cpu$/);
    await session.release();
  });

  it.skipIf(!gpuMissing)("an explicitly requested device that cannot load is an error saying how to get it", async () => {
    for (const device of ["cuda", "webgpu"] as const) {
      const error = await caught(() => openSession(MODEL, { device }));
      expect(isRuntimeError(error) && error.code).toBe("device-unavailable");
      expect((error as Error).message).toMatch(/install/);
      expect((error as Error).message).not.toContain("\n");
    }
  });

  it("a file that is not a model is a one-line error", async () => {
    const error = await caught(() => openSession(join(REFERENCE_DIR, "llama-torchscript/expected.json"), { device: "cpu" }));
    expect(isRuntimeError(error) && error.code).toBe("model-load-failed");
    expect((error as Error).message).not.toContain("\n");
  });
});
