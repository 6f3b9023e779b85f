import type { SamplingConfig } from "../../runtime/index.ts";
import type { MethodDefinition } from "./method.ts";

/** Sampling: the runtime's sampler with the stage's settings; filters at their neutral value are left out. */
export const SAMPLE: MethodDefinition = {
  slot: "sampling",
  name: "sample",
  doc: "sampling from the softmax distribution",
  lossy: false,
  params: {
    temperature: { type: { kind: "number", min: 0, minExclusive: true }, default: 1.0, doc: "logits are divided by it" },
    top_k: { type: { kind: "int", min: 0 }, default: 0, doc: "keep the k most likely tokens; 0 keeps all" },
    top_p: { type: { kind: "number", min: 0, max: 1, minExclusive: true }, default: 1.0, doc: "nucleus: keep the smallest set with this much probability" },
    seed: { type: { kind: "int", min: 0 }, default: 0, doc: "random seed; the same seed gives the same tokens" },
    repetition_penalty: { type: { kind: "number", min: 0, minExclusive: true }, default: 1.0, doc: "logits of tokens already present are divided by it" },
  },
  lowering: { level: "runtime" },
  runtime: {
    sampling: (params) => {
      const p = params as Record<string, number>;
      const config: SamplingConfig = { temperature: p["temperature"]! };
      if (p["top_k"]! > 0) config.topK = p["top_k"]!;
      if (p["top_p"]! < 1) config.topP = p["top_p"]!;
      if (p["repetition_penalty"]! !== 1) config.repetitionPenalty = p["repetition_penalty"]!;
      config.seed = p["seed"]!;
      return config;
    },
  },
};
