import { parseBudget } from "../../passes/sparse-attention/budget.ts";
import { parseAutoCount } from "../../passes/sparse-attention/options.ts";
import { createTokenSelect, TOKEN_SELECT, TOKEN_SELECT_PAPER as PAPER, TOKEN_SELECT_PAPER_BUDGET as PAPER_BUDGET, type TokenSelectOptions } from "../../passes/sparse-attention/token-select.ts";
import { SPARSE_APPEND_ONLY } from "./append-only.ts";
import { methodPass, type MethodDefinition } from "./method.ts";
import { budgetOf, countOrAuto } from "./params.ts";

/** TokenSelect (Wu, Pan et al., EMNLP 2025): the paper's 2688 keys a step, shared as it shares them, no pooling. */
export const TOKENSELECT: MethodDefinition = {
  slot: "attention",
  name: "tokenselect",
  doc: "TokenSelect: per-head query-key dot products pick the top-k cached tokens for each step",
  lossy: true,
  params: {
    top_k: { type: { kind: "budget" }, default: PAPER_BUDGET, doc: "keys attended per step: the sinks, the window and the selected keys together" },
    sinks: { type: { kind: "auto-or-int", min: 0 }, default: "auto", doc: `leading tokens always attended to; auto: the paper's ${PAPER.sinks} of ${PAPER_BUDGET} keys, scaled down to top_k` },
    window: { type: { kind: "auto-or-int", min: 0 }, default: "auto", doc: `most recent tokens always attended to (the new one included); auto: the paper's ${PAPER.window} of ${PAPER_BUDGET} keys, scaled down to top_k` },
    kernel_size: { type: { kind: "int", min: -1 }, default: -1, doc: "pooling kernel over token scores; -1 disables pooling" },
    selection_cache: { type: { kind: "bool" }, default: false, doc: "reuse the previous selection when consecutive queries are similar" },
    cache_threshold: { type: { kind: "number", min: 0, max: 1 }, default: 0.9, doc: "query cosine similarity above which the selection is reused" },
  },
  check: (p) => {
    const [topK, sinks, window] = [p["top_k"], p["sinks"], p["window"]];
    if (typeof topK !== "number") return undefined;
    const fixed = (typeof sinks === "number" ? sinks : 0) + Math.max(typeof window === "number" ? window : 0, 1);
    if (fixed <= topK) return undefined;
    return `sinks and window take ${fixed} keys, more than top_k (${topK}): top_k counts every key a step attends, the sinks, the window (the new token included) and the selected keys`;
  },
  lowering: {
    level: "graph",
    pass: methodPass<TokenSelectOptions>({
      name: TOKEN_SELECT,
      create: createTokenSelect,
      extra: SPARSE_APPEND_ONLY,
      options: (p, x) => ({
        topK: budgetOf(p["top_k"]!),
        sinks: countOrAuto(p["sinks"]!),
        window: countOrAuto(p["window"]!),
        kernelSize: p["kernel_size"] as number,
        ...(p["selection_cache"] === true && { selectionCache: { threshold: p["cache_threshold"] as number } }),
        appendOnly: x["kv_append_only"] === true,
      }),
      read: (o) => ({
        topK: parseBudget(String(o["top_k"]), `${TOKEN_SELECT}: top_k`),
        sinks: parseAutoCount(String(o["sinks"]), `${TOKEN_SELECT}: sinks`),
        window: parseAutoCount(String(o["window"]), `${TOKEN_SELECT}: window`),
        kernelSize: o["kernel_size"] as number,
        ...(o["selection_cache"] === true && { selectionCache: { threshold: o["cache_threshold"] as number } }),
        appendOnly: o["kv_append_only"] === true,
      }),
      onAttention: true,
    }),
  },
  withSpeculation: { refused: "TokenSelect's heads vote on the keys with one query's scores, and a step verifying a draft scores several queries at once: it would attend to every key" },
};
