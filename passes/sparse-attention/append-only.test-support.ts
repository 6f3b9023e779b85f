// The sparse passes composed with kv-append-only, as a .pipe compiles them: the rewrite, then the
// append-only contract (split attention in the dense layers, present_new.* outputs).
import { expect } from "vitest";
import type { Model } from "../../compiler/ir/model.ts";
import { createKvAppendOnly } from "../kv-append-only.ts";
import { throughCopies } from "../kv-split-attention.ts";

/** `rewrite` followed by kv-append-only; checks no layer still reads (or outputs) the concatenated cache. */
export function thenAppendOnly(rewrite: (m: Model) => number): (m: Model) => number {
  return (model) => {
    const rewritten = rewrite(model);
    createKvAppendOnly().run(model, { options: {}, note: () => {} });
    const pasts = new Set(model.graph.inputs.filter((i) => i.name.startsWith("past_key_values.")));
    // A one-input Concat is TorchScript's copy of the past (read for its length), not the cache growing.
    const cacheConcats = model.graph.nodeArray().filter((n) => n.op === "Concat" && n.inputs.length > 1 && n.inputs.some((i) => i && pasts.has(throughCopies(i))));
    expect(cacheConcats.map((n) => n.name)).toEqual([]);
    return rewritten;
  };
}

/**
 * The exactness cases kv-append-only takes: it refuses GroupQueryAttention (the zoo's llama "ms"
 * encoding grows its cache inside the op) and gpt2-torchscript (which never reads position_ids).
 */
export const APPEND_ONLY_CASES = /^(?!zoo llama ms$|reference gpt2-torchscript$)/;
