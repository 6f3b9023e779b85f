import type { MethodDefinition } from "./method.ts";

/** Each slot's default: the model as exported, decoded one greedy token per call. */
export const FULL_CACHE: MethodDefinition = { slot: "kv", name: "full", doc: "keep every past key and value", lossy: false, params: {}, lowering: { level: "none" } };
export const DENSE_ATTENTION: MethodDefinition = { slot: "attention", name: "dense", doc: "every query attends to every cached key", lossy: false, params: {}, lowering: { level: "none" } };
export const NO_SPECULATION: MethodDefinition = { slot: "speculate", name: "none", doc: "one token per model call", lossy: false, params: {}, lowering: { level: "none" } };
export const GREEDY: MethodDefinition = { slot: "sampling", name: "greedy", doc: "the most likely token", lossy: false, params: {}, lowering: { level: "runtime" } };
export const NO_PRUNING: MethodDefinition = { slot: "prune", name: "none", doc: "keep every visual token", lossy: false, params: {}, lowering: { level: "none" }, runtime: { prune: () => ({ method: "none" }) } };
