import { createStreamingLlm, STREAMING_LLM, type StreamingLlmOptions } from "../../passes/kv/streaming-llm.ts";
import { methodPass, type MethodDefinition } from "./method.ts";

/**
 * StreamingLLM (Xiao et al., ICLR 2024): 4 sinks + 1020 recent tokens, a
 * 1024-token cache. The graph attends to sinks + window; the driver passes the same numbers to
 * the runtime, which evicts (an append-only cache too: it gathers and compacts its buffer). With
 * speculation's tree mask the pass keeps the present cache.
 */
export const STREAMING: MethodDefinition = {
  slot: "kv",
  name: "streaming",
  doc: "StreamingLLM: keep the first `sinks` tokens and a window of the most recent ones",
  lossy: true,
  params: {
    sinks: { type: { kind: "int", min: 0 }, default: 4, doc: "attention-sink tokens kept from the start" },
    window: { type: { kind: "int", min: 1 }, default: 1020, doc: "most recent tokens kept" },
  },
  lowering: {
    level: "graph",
    pass: methodPass<StreamingLlmOptions>({
      name: STREAMING_LLM,
      create: createStreamingLlm,
      extra: {
        kv_append_only: {
          type: "boolean",
          description: "attend over past and new rows apart, then rewrite to the append-only KV contract (kv-append-only) where the model allows: no cache Concat (not with a tree mask)",
          default: false,
          lowered: true,
        },
      },
      options: (p, x) => ({ sinks: p["sinks"] as number, window: p["window"] as number, appendOnly: x["kv_append_only"] === true }),
      read: (o) => ({ sinks: o["sinks"] as number, window: o["window"] as number, appendOnly: o["kv_append_only"] === true }),
      onAttention: true,
    }),
  },
  runtime: { streaming: (p) => ({ sinks: p["sinks"] as number, window: p["window"] as number }) },
  // A fixed key set per position (the sinks and the recent window) is what a per-query mask expresses.
  withSpeculation: "tree-mask",
};
