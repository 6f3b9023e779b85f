import type { Graph } from "../ir/graph.ts";
import { Model } from "../ir/model.ts";

/** The graphs rules run on: a model's main graph and function bodies, or just the graph given. */
export function topGraphs(target: Graph | Model): Graph[] {
  return target instanceof Model ? [target.graph, ...target.functions.map((f) => f.body)] : [target];
}

/** `graph` and, when asked, every subgraph nested in its nodes (If branches, Loop bodies). */
export function* withSubgraphs(graph: Graph, descend: boolean): IterableIterator<Graph> {
  yield graph;
  if (!descend) return;
  for (const node of graph.nodes()) for (const sub of node.subgraphs()) yield* withSubgraphs(sub, true);
}
