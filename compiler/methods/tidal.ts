import { parseBudget } from "../../passes/sparse-attention/budget.ts";
import { parseAutoCount, parseLayers } from "../../passes/sparse-attention/options.ts";
import { createTidalDecode, TIDAL_DECODE, TIDAL_PAPER_LAYERS as PAPER, type TidalDecodeOptions } from "../../passes/sparse-attention/tidal-decode.ts";
import { SPARSE_APPEND_ONLY } from "./append-only.ts";
import { methodPass, type MethodDefinition } from "./method.ts";
import { budgetOf, countOrAuto } from "./params.ts";

/** TidalDecode (Yang et al., ICLR 2025): 256 tokens; `auto` layers scale the paper's roles to the model (the pass's rule). */
export const TIDAL: MethodDefinition = {
  slot: "attention",
  name: "tidal",
  doc: "TidalDecode: full attention on a few layers selects the top-k tokens the sparse layers attend to",
  lossy: true,
  params: {
    top_k: { type: { kind: "budget" }, default: 256, doc: "tokens attended to by sparse layers" },
    full_layers: { type: { kind: "auto-or-int", min: 0, layers: true }, default: "auto", doc: `leading layers that keep full attention; auto: the paper's ${PAPER.fullLayers}, fewer in a model of under ${PAPER.fullLayers + 2} layers` },
    select_layers: { type: { kind: "layers", auto: true }, default: "auto", doc: `layers whose full attention re-selects the tokens; auto: the first sparse layer and the paper's depth ${PAPER.reselectLayer}/${PAPER.layers} of the model` },
  },
  check: (p) => {
    if (p["select_layers"] === "auto" || p["full_layers"] === "auto") return undefined;
    const below = (p["select_layers"] as number[]).filter((l) => l < (p["full_layers"] as number));
    return below.length ? `select_layers [${below.join(", ")}] must not be below full_layers (${p["full_layers"]}): those layers attend fully already` : undefined;
  },
  lowering: {
    level: "graph",
    pass: methodPass<TidalDecodeOptions>({
      name: TIDAL_DECODE,
      create: createTidalDecode,
      extra: SPARSE_APPEND_ONLY,
      options: (p, x) => ({
        topK: budgetOf(p["top_k"]!),
        fullLayers: countOrAuto(p["full_layers"]!),
        ...(p["select_layers"] !== "auto" && { selectLayers: p["select_layers"] as number[] }),
        appendOnly: x["kv_append_only"] === true,
      }),
      read: (o) => ({
        topK: parseBudget(String(o["top_k"]), `${TIDAL_DECODE}: top_k`),
        fullLayers: parseAutoCount(String(o["full_layers"]), `${TIDAL_DECODE}: full_layers`),
        selectLayers: parseLayers(String(o["select_layers"]), `${TIDAL_DECODE}: select_layers`),
        appendOnly: o["kv_append_only"] === true,
      }),
      onAttention: true,
    }),
  },
  withSpeculation: { refused: "TidalDecode picks the keys from one query's scores, and a step verifying a draft scores several queries at once: it would attend to every key" },
};
