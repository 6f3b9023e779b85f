import { createSlidingWindow, SLIDING_WINDOW, type SlidingWindowOptions } from "../../passes/kv/sliding-window.ts";
import type { SlidingWindowConfig } from "../../runtime/kv-policies/sliding-window.ts";
import { methodPass, type MethodDefinition } from "./method.ts";

/**
 * Sliding-window attention (Mistral 7B, Jiang et al. 2023; its window: 4096 keys). The graph
 * attends each query to its last `size` keys; the runtime's policy evicts the rest, so the cache
 * stays at the window. The band is over cache rows, so a token tree's queries (at their depths,
 * not their rows) would not get their own windows: refused with speculation.
 */
export const WINDOW: MethodDefinition = {
  slot: "kv",
  name: "window",
  doc: "sliding-window attention: each query attends to its `size` most recent keys, and the cache keeps only those",
  lossy: true,
  params: {
    size: { type: { kind: "int", min: 1 }, default: 4096, doc: "keys each query attends to, itself included" },
  },
  lowering: {
    level: "graph",
    pass: methodPass<SlidingWindowOptions>({
      name: SLIDING_WINDOW,
      create: createSlidingWindow,
      options: (p) => ({ size: p["size"] as number }),
      read: (o) => ({ size: o["size"] as number }),
      onAttention: true,
    }),
  },
  runtime: {
    kvPolicy: (p) => ({ module: "kv-policies/sliding-window.ts", export: "SlidingWindowEviction", options: { size: p["size"] as number } satisfies SlidingWindowConfig }),
  },
  withSpeculation: { refused: "its window is a band over cache rows, and a draft tree's queries sit at their depths, not their rows: a verifying step would give them the wrong keys" },
};
