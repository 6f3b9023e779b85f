import { PipecError } from "../../graph/errors.ts";
import type { Model } from "../../graph/ir/model.ts";
import type { Value } from "../../graph/ir/value.ts";
import type { Pass, PassContext, PassResult } from "../../graph/pass-manager/pass.ts";
import { readCanonical } from "../attention/canonical-node.ts";
import { appendOnlyWhereAllowed } from "./append-only.ts";
import { budgetTokens, formatBudget, type Budget } from "./budget.ts";
import { denseCanonicalNodes, NO_ATTENTION_LEFT } from "./layers.ts";
import { SparseSite } from "./site.ts";
import { attendDenseSelecting, attendPerHead, type PerHeadSelection } from "./attend-selected.ts";

export const TIDAL_DECODE = "tidal";

export interface TidalDecodeOptions {
  /** Keys each sparse layer's query heads attend to. */
  topK: Budget;
  /** Layers below this keep full attention; "auto": the paper's 2, fewer where the model would keep no sparse layer (see defaultFullLayers). */
  fullLayers: number | "auto";
  /** Token-selection layers (full attention + a fresh top-k); undefined: scaled from the paper, see `defaultSelectLayers`. */
  selectLayers?: readonly number[];
  /** Then rewrite to the append-only KV contract where the model allows (see appendOnlyWhereAllowed). */
  appendOnly?: boolean;
}

/** The paper's layer roles (TidalDecode, Yang et al., ICLR 2025): sparse from layer 2, re-selection at layer 13 of Llama-3-8B's 32; what `auto` scales to a model. */
export const TIDAL_PAPER_LAYERS = { layers: 32, fullLayers: 2, reselectLayer: 13 } as const;
const { layers: PAPER_LAYERS, fullLayers: PAPER_FULL_LAYERS, reselectLayer: PAPER_RESELECT_LAYER } = TIDAL_PAPER_LAYERS;

/** The paper's 2 full layers, fewer in a model of under 4 layers: a selection layer and a sparse one remain. */
export function defaultFullLayers(layers: number): number {
  return Math.max(0, Math.min(PAPER_FULL_LAYERS, layers - 2));
}

/**
 * The paper selects at the first sparse layer and re-selects at layer 13 of 32: the same depth
 * fraction (13/32, rounded) in an L-layer model, where a sparse layer lies before and after it;
 * else one selection layer (a shallow model keeps its few sparse layers).
 */
export function defaultSelectLayers(layers: number, fullLayers: number): number[] {
  const reselect = Math.round((PAPER_RESELECT_LAYER * layers) / PAPER_LAYERS);
  return reselect > fullLayers + 1 && reselect < layers - 1 ? [fullLayers, reselect] : [fullLayers];
}

/**
 * TidalDecode (Yang et al., ICLR 2025): layers < full_layers attend fully; each selection layer
 * attends fully and picks, per query head, the top-k keys by its pre-softmax scores (scaled,
 * masked); the layers after it attend only to those keys, gathered per head (keys and values
 * outside the selection are not read), until the next selection layer picks again. The indices
 * are an ordinary edge from the selection layer to the sparse ones: no runtime state. With a KV
 * cache the selection is among the past rows and the step's new row is always attended, as one
 * of the budget's keys (the paper ranks it with the rest), and the sparse layers never read the
 * cache's Concat: composed with kv-append-only, only the selected past rows are read.
 * Decode-only: a step with more than one query (prefill) selects every key, which is dense
 * attention computed over a permutation of the keys.
 */
export function createTidalDecode(opts: TidalDecodeOptions): Pass {
  return {
    name: TIDAL_DECODE,
    description: `TidalDecode: full attention in ${opts.fullLayers} layers and the selection layers, top-${formatBudget(opts.topK)} gathered elsewhere (lossy)`,
    lossy: true,
    run(model: Model, ctx: PassContext): PassResult {
      const stats = tidalDecode(model, opts);
      if (stats.layers === 0) ctx.note(NO_ATTENTION_LEFT);
      else if (stats.sparse === 0) ctx.note(stats.fullLayers >= stats.layers ? `full_layers (${stats.fullLayers}) keeps all of the model's ${stats.layers} attention layers dense` : `the attention layers after full_layers (${stats.fullLayers}) are all selection layers (select_layers [${stats.selectLayers.join(", ")}]), which attend fully, so none would attend sparsely`);
      else ctx.note(`selection layers ${stats.selectLayers.join(", ")}; ${stats.sparse} sparse layers`);
      const appendOnly = opts.appendOnly === true && stats.sparse > 0 && appendOnlyWhereAllowed(model, ctx);
      return { changed: stats.sparse > 0, stats: { selection: stats.selection, sparse: stats.sparse, "kv-append-only": appendOnly ? 1 : 0 } };
    },
  };
}

export interface TidalStats {
  /** Attention layers found (dense canonical nodes). */
  layers: number;
  fullLayers: number;
  selectLayers: number[];
  selection: number;
  sparse: number;
}

export function tidalDecode(model: Model, opts: TidalDecodeOptions): TidalStats {
  const nodes = denseCanonicalNodes(model);
  const layerOf = (i: number) => readCanonical(nodes[i]!).layer;
  const layerCount = nodes.length === 0 ? 0 : Math.max(...nodes.map((_, i) => layerOf(i))) + 1;
  const fullLayers = opts.fullLayers === "auto" ? defaultFullLayers(layerCount) : opts.fullLayers;
  const selectLayers = [...(opts.selectLayers ?? defaultSelectLayers(layerCount, fullLayers))].sort((a, b) => a - b);
  if (selectLayers.some((l) => l < fullLayers)) {
    throw new PipecError("pass-option", `${TIDAL_DECODE}: select_layers [${selectLayers.join(", ")}] must not be below full_layers (${fullLayers})`);
  }
  if (nodes.length > 0 && (model.opset("") ?? 1) < 11) throw new PipecError("unsupported-opset", `${TIDAL_DECODE}: needs default-domain opset 11 (TopK with a dynamic k, GatherElements); the model imports ${model.opset("")}`);

  const stats: TidalStats = { layers: layerCount, fullLayers, selectLayers, selection: 0, sparse: 0 };
  let selection: PerHeadSelection | undefined;
  nodes.forEach((node, i) => {
    const layer = layerOf(i);
    if (layer < fullLayers) return;
    if (selectLayers.includes(layer)) {
      selection = { keep_BHK: selectTopK(new SparseSite(model, node, TIDAL_DECODE, { splitCache: true }), opts.topK), masks: new Map() };
      stats.selection++;
    } else if (selection) {
      attendPerHead(new SparseSite(model, node, TIDAL_DECODE, { splitCache: true }), selection);
      stats.sparse++;
    }
  });
  return stats;
}

/**
 * int64 [B, H, k]: per query head, the selectable keys with the highest pre-softmax scores, in
 * no particular order. With a KV cache those are the past rows (the step's new row is attended
 * anyway, within the budget), and a first step's empty past gives k = 0.
 */
function selectTopK(site: SparseSite, budget: Budget): Value {
  const M_1 = site.selectable_1;
  // The new rows take their share of the budget (>= 1 key, and a decode step adds one row).
  const pastBudget_1 = site.b.op.Sub(budgetTokens(site, budget), site.b.op.Sub(site.N_1, M_1));
  const k_1 = site.decodeOnly(site.min(pastBudget_1, M_1), M_1);
  // Unsorted: the rows are gathered in TopK's order. Reading them in address order is no faster
  // and ordering them costs a sort per selection; attention sums the keys in another order
  // (float rounding only).
  const select = (scores_BHM: Value) => site.b.node("TopK", [scores_BHM, k_1], { outputs: 2, attributes: { axis: -1, largest: 1, sorted: 0 } }).output(1);
  // With a cache the layer's own attention scores the past: its K is read once.
  return attendDenseSelecting(site, select) ?? select(site.selectableScores(true));
}
