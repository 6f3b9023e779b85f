// Opening an onnxruntime session on an explicit device. `auto` prefers a GPU and falls
// back to the CPU with one line saying why; an explicitly requested device that cannot
// load is an error that says how to get it. Provider libraries are checked on disk first:
// a failed provider load makes onnxruntime and Dawn print multi-line native logs.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import * as ort from "onnxruntime-node";
import { RuntimeError } from "./errors.ts";
import { cleanOrtMessage } from "./ort-message.ts";

export type Device = "cpu" | "cuda" | "webgpu" | "auto";
export type ResolvedDevice = Exclude<Device, "auto">;
export type GraphOptimizationLevel = "disabled" | "basic" | "extended" | "all";

export interface SessionOptions {
  device?: Device;
  /** Intra-op threads; onnxruntime's default (all cores) when absent. */
  threads?: number;
  graphOptimizationLevel?: GraphOptimizationLevel;
  /** Receives the one-line notice that `auto` found no GPU (default: none; library code prints nothing). */
  onNotice?: (line: string) => void;
}

export interface OpenedSession {
  session: ort.InferenceSession;
  device: ResolvedDevice;
}

const GPU_PREFERENCE: ResolvedDevice[] = ["cuda", "webgpu"];

const HOW_TO_GET: Record<ResolvedDevice, string> = {
  cpu: "",
  cuda: "install onnxruntime-node with its CUDA provider (npm install without ONNXRUNTIME_NODE_INSTALL=skip) and put CUDA 12 + cuDNN 9 on the library path",
  webgpu: "install the Vulkan loader (Debian: apt-get install libvulkan1) and a GPU driver with a Vulkan ICD",
};

function ortBinaryDir(): string {
  const entry = createRequire(import.meta.url).resolve("onnxruntime-node");
  return join(dirname(entry), "..", "bin", "napi-v6", process.platform, process.arch);
}

function libraryDirs(): string[] {
  const fromEnv = (process.env.LD_LIBRARY_PATH ?? "").split(":").filter(Boolean);
  const system = ["/lib", "/usr/lib", "/lib64", "/usr/lib64", "/usr/local/lib", `/usr/lib/${process.arch === "x64" ? "x86_64" : "aarch64"}-linux-gnu`, `/lib/${process.arch === "x64" ? "x86_64" : "aarch64"}-linux-gnu`];
  return [...fromEnv, ...system];
}

/** Why `device` cannot load here, judged without loading it; undefined when it may load. */
export function missingRequirement(device: ResolvedDevice): string | undefined {
  if (device === "cpu" || process.platform !== "linux") return undefined;
  if (device === "cuda") {
    const lib = join(ortBinaryDir(), "libonnxruntime_providers_cuda.so");
    return existsSync(lib) ? undefined : "CUDA provider library libonnxruntime_providers_cuda.so is not installed";
  }
  const found = libraryDirs().some((dir) => existsSync(join(dir, "libvulkan.so.1")));
  return found ? undefined : "libvulkan.so.1 is missing (WebGPU runs on Vulkan)";
}

function ortOptions(device: ResolvedDevice, options: SessionOptions): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: [device],
    graphOptimizationLevel: options.graphOptimizationLevel ?? "all",
    ...(options.threads !== undefined ? { intraOpNumThreads: options.threads, interOpNumThreads: 1 } : {}),
    // Load and run failures are reported by us in one line (ort-message.ts); onnxruntime's own
    // logger would print them again, coloured, before the program could catch them.
    logSeverityLevel: 4,
  };
}

async function tryOpen(model: string | Uint8Array, device: ResolvedDevice, options: SessionOptions): Promise<ort.InferenceSession | string> {
  const missing = missingRequirement(device);
  if (missing) return missing;
  try {
    return typeof model === "string"
      ? await ort.InferenceSession.create(model, ortOptions(device, options))
      : await ort.InferenceSession.create(model, ortOptions(device, options));
  } catch (e) {
    return cleanOrtMessage(e);
  }
}

export async function openSession(model: string | Uint8Array, options: SessionOptions = {}): Promise<OpenedSession> {
  const requested = options.device ?? "auto";
  if (requested === "auto") {
    const reasons: string[] = [];
    for (const device of GPU_PREFERENCE) {
      const opened = await tryOpen(model, device, options);
      if (typeof opened !== "string") return { session: opened, device };
      reasons.push(`${device}: ${opened}`);
    }
    options.onNotice?.(`pipec: no GPU provider loaded (${reasons.join("; ")}); running on cpu`);
    return { session: await openOrThrow(model, "cpu", options), device: "cpu" };
  }
  return { session: await openOrThrow(model, requested, options), device: requested };
}

async function openOrThrow(model: string | Uint8Array, device: ResolvedDevice, options: SessionOptions): Promise<ort.InferenceSession> {
  const opened = await tryOpen(model, device, options);
  if (typeof opened !== "string") return opened;
  const label = typeof model === "string" ? model : "model";
  if (device === "cpu") throw new RuntimeError("model-load-failed", `${label}: onnxruntime cannot load the model: ${opened}`);
  throw new RuntimeError("device-unavailable", `device ${device} is unavailable: ${opened}; to use it, ${HOW_TO_GET[device]} (or pass --device cpu / auto)`);
}
