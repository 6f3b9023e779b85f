/**
 * The baseline pipec is measured against: the loop a transformers.js user runs on an Optimum
 * decoder export, written plainly. Each step feeds present.* back as past_key_values.*, builds
 * the mask and positions as fresh arrays, pulls the full logits [1, S, V] to the host and takes
 * the argmax of the last row. Nothing of pipec is imported on purpose.
 */
import * as ort from "onnxruntime-node";

export interface BaselineRun {
  tokens: number[];
  prefillMs: number;
  /** Wall time of the decode steps (every token after the first). */
  decodeMs: number;
  sessionRunMs: number;
  /** CPU time of this process over the decode steps (all threads). */
  decodeCpuMs: number;
}

export async function runBaseline(modelPath: string, prompt: readonly number[], maxNewTokens: number, threads: number): Promise<BaselineRun> {
  const session = await ort.InferenceSession.create(modelPath, { intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: "all" });
  try {
    const pastNames = session.inputNames.filter((n) => n.startsWith("past_key_values."));
    const meta = (name: string) => session.inputMetadata.find((m) => m.name === name) as ort.InferenceSession.TensorValueMetadata;
    const int64 = (values: number[], dims: number[]) => new ort.Tensor("int64", BigInt64Array.from(values, BigInt), dims);

    let past: Record<string, ort.Tensor> = {};
    for (const name of pastNames) {
      const dims = meta(name).shape.map((d, axis) => (axis === 0 ? 1 : typeof d === "number" ? d : 0));
      past[name] = new ort.Tensor("float32", new Float32Array(0), dims);
    }

    const tokens: number[] = [];
    let step = [...prompt];
    let pastLength = 0;
    let sessionRunMs = 0;
    let prefillMs = 0;
    let decodeCpu = process.cpuUsage();
    const start = performance.now();
    while (tokens.length < maxNewTokens) {
      const S = step.length;
      const feeds: Record<string, ort.Tensor> = {
        ...past,
        input_ids: int64(step, [1, S]),
        attention_mask: int64(new Array(pastLength + S).fill(1), [1, pastLength + S]),
        position_ids: int64(Array.from({ length: S }, (_, i) => pastLength + i), [1, S]),
      };
      const t0 = performance.now();
      const out = await session.run(feeds);
      sessionRunMs += performance.now() - t0;

      const logits = out.logits!.data as Float32Array;
      const V = out.logits!.dims[2]!;
      let best = 0;
      for (let v = 1; v < V; v++) if (logits[(S - 1) * V + v]! > logits[(S - 1) * V + best]!) best = v;
      tokens.push(best);
      if (tokens.length === 1) {
        prefillMs = performance.now() - start;
        decodeCpu = process.cpuUsage();
      }

      past = {};
      for (const name of pastNames) past[name] = out[name.replace("past_key_values.", "present.")]!;
      pastLength += S;
      step = [best];
    }
    const cpu = process.cpuUsage(decodeCpu);
    return { tokens, prefillMs, decodeMs: performance.now() - start - prefillMs, sessionRunMs, decodeCpuMs: (cpu.user + cpu.system) / 1000 };
  } finally {
    await session.release();
  }
}
