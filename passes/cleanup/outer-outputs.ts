import type { Model } from "../../graph/ir/model.ts";
import type { Value } from "../../graph/ir/value.ts";

/**
 * Values that a subgraph returns directly from an enclosing scope (a branch whose output is an
 * outer value). They are read, but not through a node input, so they have no entry in `uses` and
 * `replaceAllUsesWith` does not redirect them: passes must neither remove nor replace them.
 */
export function outerValuesReturnedBySubgraphs(model: Model): Set<Value> {
  const out = new Set<Value>();
  for (const root of [model.graph, ...model.functions.map((f) => f.body)]) {
    for (const node of root.allNodes()) {
      for (const sub of node.subgraphs()) for (const v of sub.outputs) if (v.graph !== sub) out.add(v);
    }
  }
  return out;
}
