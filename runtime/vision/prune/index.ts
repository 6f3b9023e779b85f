// Visual token pruning between the projector and the decoder: a method picks which of the
// encoder's visual tokens the decoder sees. Every method but `none` is lossy.
import { RuntimeError } from "../../errors.ts";
import type { VisualTokens } from "../encoder.ts";
import { keptCount, type KeepBudget } from "./budget.ts";
import { divPrune } from "./divprune.ts";
import { globalCom2 } from "./globalcom2.ts";
import { toDreDiversity } from "./todre.ts";

export type PruneConfig = { method: "none" } | { method: "divprune" | "todre"; keep: KeepBudget } | { method: "globalcom2"; keep: KeepBudget; grid: number };

/** How many crops per side the method's vision input is cut into (1: the image as one view). */
export function cropGrid(config: PruneConfig): number {
  return config.method === "globalcom2" ? config.grid : 1;
}

/** Whether the method's visual tokens leave the decoder's cache once the prompt is in (ToDRE's second stage). */
export function dropsVisualRowsAfterPrompt(config: PruneConfig): boolean {
  return config.method === "todre";
}

/** Indices (ascending) of the visual tokens `config` keeps. */
export function selectVisualTokens(tokens: VisualTokens, config: PruneConfig): number[] {
  switch (config.method) {
    case "none":
      return Array.from({ length: tokens.tokens }, (_, i) => i);
    case "divprune":
      return divPrune(tokens.features, tokens.tokens, tokens.dim, keptCount(config.keep, tokens.tokens), tokens.distances);
    case "globalcom2": {
      const grid = tokens.grid ?? 1;
      const perView = tokens.tokens / (1 + grid * grid);
      const side = Math.round(Math.sqrt(perView));
      if (grid < 2 || side * side !== perView) throw new RuntimeError("bad-option", "prune: globalcom2 needs multi-crop visual tokens on a square patch grid");
      if (!tokens.clsAttention) throw new RuntimeError("unsupported-model", "prune: globalcom2 needs the vision encoder's [CLS] attention (a cls_attention output)");
      const views = Array.from({ length: 1 + grid * grid }, (_, v) => ({ clsAttention: tokens.clsAttention!.subarray(v * perView, (v + 1) * perView) }));
      return globalCom2(views, side, grid, keptCount(config.keep, tokens.tokens) / tokens.tokens);
    }
    case "todre":
      return toDreDiversity(tokens.features, tokens.tokens, tokens.dim, keptCount(config.keep, tokens.tokens), tokens.clsAttention, tokens.distances);
    default:
      throw new RuntimeError("bad-option", `unknown visual token pruning method '${(config as { method: string }).method}'`);
  }
}

/** The rows of `tokens` at `kept`, [kept.length * dim]. */
export function gatherTokens(tokens: VisualTokens, kept: readonly number[]): Float32Array {
  if (kept.length === tokens.tokens) return tokens.features;
  const out = new Float32Array(kept.length * tokens.dim);
  kept.forEach((k, i) => out.set(tokens.features.subarray(k * tokens.dim, (k + 1) * tokens.dim), i * tokens.dim));
  return out;
}
