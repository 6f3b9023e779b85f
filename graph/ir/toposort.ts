import { PipecError } from "../errors.ts";
import type { Graph } from "./graph.ts";
import type { Model } from "./model.ts";
import type { Node } from "./node.ts";
import type { Value } from "./value.ts";

/**
 * The nodes of `graph` that `node` must follow: producers of its inputs and of every value its
 * subgraphs read or return from `graph`'s scope (an If branch reading an outer value depends on
 * its producer).
 */
export function predecessors(graph: Graph, node: Node): Node[] {
  const deps = new Set<Node>();
  const read = (v: Value | undefined) => {
    if (v?.graph === graph && v.producer?.graph === graph) deps.add(v.producer);
  };
  const visit = (n: Node) => {
    n.inputs.forEach(read);
    for (const sub of n.subgraphs()) {
      sub.outputs.forEach(read); // a branch may return an outer value directly
      for (const inner of sub.nodes()) visit(inner);
    }
  };
  visit(node);
  // A node that reads its own output stays among its predecessors: that is a cycle of one.
  return [...deps];
}

/** The nodes of `graph` in a topological order, or the nodes of one cycle when there is none. */
function order(graph: Graph): { sorted: Node[] } | { cycle: Node[] } {
  // Iterative depth-first search that visits nodes in list order and their predecessors in input
  // order: an already sorted graph comes out unchanged, and an edge back into the stack is a cycle.
  const state = new Map<Node, "active" | "done">();
  const sorted: Node[] = [];
  for (const root of graph.nodes()) {
    if (state.has(root)) continue;
    const stack: { node: Node; deps: Node[]; next: number }[] = [{ node: root, deps: predecessors(graph, root), next: 0 }];
    state.set(root, "active");
    while (stack.length) {
      const top = stack[stack.length - 1]!;
      if (top.next === top.deps.length) {
        state.set(top.node, "done");
        sorted.push(top.node);
        stack.pop();
        continue;
      }
      const dep = top.deps[top.next++]!;
      const s = state.get(dep);
      if (s === "done") continue;
      if (s === "active") {
        // Each stack frame is a predecessor of the one below it: reverse to list the cycle in data-flow order.
        const from = stack.findIndex((f) => f.node === dep);
        return { cycle: [dep, ...stack.slice(from + 1).map((f) => f.node).reverse()] };
      }
      state.set(dep, "active");
      stack.push({ node: dep, deps: predecessors(graph, dep), next: 0 });
    }
  }
  return { sorted };
}

/** The nodes of one cycle in `graph` (in dependency order), or undefined when it has none. */
export function findCycle(graph: Graph): Node[] | undefined {
  const result = order(graph);
  return "cycle" in result ? result.cycle : undefined;
}

/** True when every node comes after the producers of the values it reads. */
export function isTopologicallySorted(graph: Graph): boolean {
  const seen = new Set<Node>();
  for (const n of graph.nodes()) {
    if (predecessors(graph, n).some((p) => !seen.has(p))) return false;
    seen.add(n);
    if (!n.subgraphs().every(isTopologicallySorted)) return false;
  }
  return true;
}

/**
 * Reorders `graph` (and its subgraphs) so that every node follows the producers of its inputs,
 * moving as little as possible: a sorted graph is left as it is. Throws a PipecError naming the
 * nodes of a cycle when there is one. Returns whether anything moved.
 */
export function toposortGraph(graph: Graph): boolean {
  const result = order(graph);
  if ("cycle" in result) throw cycleError(graph, result.cycle);
  let changed = false;
  let cursor = graph.firstNode;
  for (const node of result.sorted) {
    if (node === cursor) cursor = cursor.next;
    else {
      graph.moveBefore(cursor!, node);
      changed = true;
    }
  }
  for (const n of graph.nodes()) for (const sub of n.subgraphs()) changed = toposortGraph(sub) || changed;
  return changed;
}

/** Sorts the main graph and every function body. */
export function toposortModel(model: Model): boolean {
  let changed = toposortGraph(model.graph);
  for (const fn of model.functions) changed = toposortGraph(fn.body) || changed;
  return changed;
}

export function describeCycle(cycle: readonly Node[]): string {
  const names = cycle.map((n) => `'${n.name || n.outputs.find((v) => v)?.name || n.op}' (${n.qualifiedOp})`);
  return [...names, names[0]].join(" -> ");
}

function cycleError(graph: Graph, cycle: Node[]): PipecError {
  return new PipecError("cycle", `graph '${graph.name}' has a cycle: ${describeCycle(cycle)}`);
}
