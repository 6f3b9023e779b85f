import type { Graph } from "../../graph/ir/graph.ts";
import type { Model } from "../../graph/ir/model.ts";
import type { Node } from "../../graph/ir/node.ts";
import type { Value } from "../../graph/ir/value.ts";

/** Graph inputs a position index is computed from (exports without position_ids count the mask). */
const POSITION_SOURCES = new Set(["position_ids", "attention_mask"]);

/** How far up from a Gather's indices the position input may be (Cast, Add, Reshape, CumSum, ...). */
const MAX_DEPTH = 8;

/**
 * The most positions a decoder's graph can address, read from its tables: a learned
 * position-embedding table (GPT-2's wpe) or a rotary cos/sin cache gathered at position ids,
 * or the cos_cache of a fused com.microsoft RotaryEmbedding / GroupQueryAttention. The smallest
 * table wins; undefined when the graph has none (rotary computed from the positions themselves).
 */
export function graphPositionLimit(model: Model): number | undefined {
  let limit: number | undefined;
  const visit = (graph: Graph) => {
    for (const node of graph.nodes()) {
      const rows = tableRows(node);
      if (rows !== undefined) limit = Math.min(limit ?? Infinity, rows);
      for (const sub of node.subgraphs()) visit(sub);
    }
  };
  visit(model.graph);
  return limit;
}

function tableRows(node: Node): number | undefined {
  if (node.domain === "com.microsoft" && (node.op === "RotaryEmbedding" || node.op === "GroupQueryAttention")) {
    const cos = node.op === "RotaryEmbedding" ? node.input(2) : node.input(7);
    return firstDim(cos);
  }
  if (node.op !== "Gather" || node.domain !== "" || (node.attrInt("axis") ?? 0) !== 0) return undefined;
  const table = node.input(0);
  if (!table?.initializer || table.initializer.dims.length < 2) return undefined;
  return dependsOnPositions(node.input(1), MAX_DEPTH) ? firstDim(table) : undefined;
}

function firstDim(v: Value | undefined): number | undefined {
  const rows = v?.initializer?.dims[0];
  return rows !== undefined && rows > 0 ? rows : undefined;
}

function dependsOnPositions(v: Value | undefined, depth: number): boolean {
  if (!v || depth < 0) return false;
  if (v.isGraphInput) return POSITION_SOURCES.has(v.name);
  return v.producer?.inputs.some((input) => dependsOnPositions(input, depth - 1)) ?? false;
}
