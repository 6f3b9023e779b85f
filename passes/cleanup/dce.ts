import type { Graph } from "../../graph/ir/graph.ts";
import type { Model } from "../../graph/ir/model.ts";
import type { Node } from "../../graph/ir/node.ts";
import type { Value } from "../../graph/ir/value.ts";
import type { Pass, PassResult } from "../../graph/pass-manager/pass.ts";
import { TOPOLOGICALLY_SORTED } from "../../graph/pass-manager/properties.ts";
import { outerValuesReturnedBySubgraphs } from "./outer-outputs.ts";

interface DceStats {
  nodes: number;
  initializers: number;
  valueInfo: number;
}

/**
 * Dead code elimination: removes nodes none of whose outputs is read (transitively), initializers
 * nothing reads and value_info entries for values that no longer exist, in the main graph, every
 * subgraph and every function body. Graph inputs and outputs are the interface and always stay.
 */
export function createDce(): Pass {
  return {
    name: "dce",
    description: "remove nodes, initializers and value_info nothing reads (subgraphs included)",
    preserves: [TOPOLOGICALLY_SORTED],
    run(model: Model): PassResult {
      const stats: DceStats = { nodes: 0, initializers: 0, valueInfo: 0 };
      const pinned = outerValuesReturnedBySubgraphs(model);
      for (const g of [model.graph, ...model.functions.map((f) => f.body)]) eliminateDeadCode(g, pinned, stats);
      const removed = stats.nodes + stats.initializers + stats.valueInfo;
      return { changed: removed > 0, stats: { "nodes-removed": stats.nodes, "initializers-removed": stats.initializers, "value-info-removed": stats.valueInfo } };
    },
  };
}

function eliminateDeadCode(graph: Graph, pinned: ReadonlySet<Value>, stats: DceStats): void {
  // Subgraphs first: dead code inside a branch may be what keeps an outer value alive.
  for (const n of graph.nodes()) for (const sub of n.subgraphs()) eliminateDeadCode(sub, pinned, stats);

  // Consumers come after producers, so a backwards walk frees whole dead chains in one sweep;
  // the worklist catches the rest in a graph that is not sorted.
  const work = graph.nodeArray();
  while (work.length) {
    const node = work.pop()!;
    if (node.graph !== graph || !isDead(node, pinned)) continue;
    const producers = node.inputs.map((v) => v?.producer).filter((p): p is Node => p?.graph === graph);
    removeWithSubgraphs(graph, node, stats);
    work.push(...producers);
  }

  for (const v of [...graph.initializers.values()]) {
    if (v.unused && !v.isGraphInput && !pinned.has(v)) {
      graph.removeInitializer(v);
      stats.initializers++;
    }
  }
  for (const v of [...graph.valueInfo]) {
    if (!isLive(v)) {
      graph.valueInfo.delete(v);
      stats.valueInfo++;
    }
  }
}

function isDead(node: Node, pinned: ReadonlySet<Value>): boolean {
  return node.outputs.every((v) => !v || (v.unused && !pinned.has(v)));
}

/** Removes `node` and releases what its subgraphs read from enclosing scopes. */
function removeWithSubgraphs(graph: Graph, node: Node, stats: DceStats): void {
  for (const sub of node.subgraphs()) for (const inner of sub.allNodes()) inner.dropInputs();
  graph.remove(node);
  stats.nodes++;
}

/** True when `v` is still defined: a graph input, an initializer or the output of a node in its graph. */
function isLive(v: Value): boolean {
  if (v.graph.lookup(v.name) !== v) return false;
  return v.isGraphInput || v.isInitializer || v.producer?.graph === v.graph;
}
