import type { Graph } from "../compiler/ir/graph.ts";
import type { Model } from "../compiler/ir/model.ts";
import type { Node } from "../compiler/ir/node.ts";
import type { Value } from "../compiler/ir/value.ts";
import type { Pass, PassResult } from "../compiler/pass-manager/pass.ts";
import { TOPOLOGICALLY_SORTED } from "../compiler/pass-manager/properties.ts";
import { outerValuesReturnedBySubgraphs } from "./outer-outputs.ts";

/** Operators whose every evaluation may differ: two of them are never the same value. */
const NON_DETERMINISTIC = new Set(["RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial", "Bernoulli", "Dropout"]);

/** Above this size two equal-hash constants are not compared byte for byte, so they are not merged either. */
const MAX_COMPARED_BYTES = 64 << 20;

interface CseStats {
  nodes: number;
  initializers: number;
}

/**
 * Common subexpression elimination: nodes with the same operator, attributes and inputs become
 * one, and so do initializers with the same content. Nodes holding subgraphs and non-deterministic
 * operators are never merged; a value that is a graph output (or that a subgraph returns) keeps
 * its name, so its node stays.
 */
export function createCse(): Pass {
  return {
    name: "cse",
    description: "merge identical nodes and initializers with equal content",
    requires: [TOPOLOGICALLY_SORTED],
    preserves: [TOPOLOGICALLY_SORTED],
    run(model: Model): PassResult {
      const stats: CseStats = { nodes: 0, initializers: 0 };
      const pinned = outerValuesReturnedBySubgraphs(model);
      for (const g of [model.graph, ...model.functions.map((f) => f.body)]) eliminateCommonSubexpressions(g, pinned, stats);
      return { changed: stats.nodes + stats.initializers > 0, stats: { "nodes-merged": stats.nodes, "initializers-merged": stats.initializers } };
    },
  };
}

function eliminateCommonSubexpressions(graph: Graph, pinned: ReadonlySet<Value>, stats: CseStats): void {
  mergeEqualInitializers(graph, pinned, stats);
  const ids = new ValueIds();
  const seen = new Map<string, Node>();
  // In topological order a node's inputs are already merged when its key is computed, so one
  // sweep merges whole duplicated chains.
  for (const node of graph.nodes()) {
    for (const sub of node.subgraphs()) eliminateCommonSubexpressions(sub, pinned, stats);
    if (!isMergeable(node)) continue;
    const key = nodeKey(node, ids);
    const kept = seen.get(key);
    if (!kept) {
      seen.set(key, node);
      continue;
    }
    if (node.outputs.some((v) => v && (v.isGraphOutput || pinned.has(v)))) continue;
    node.outputs.forEach((v, i) => v?.replaceAllUsesWith(kept.outputs[i]!));
    graph.remove(node);
    stats.nodes++;
  }
}

function isMergeable(node: Node): boolean {
  return node.subgraphs().length === 0 && !(node.domain === "" && NON_DETERMINISTIC.has(node.op)) && node.outputs.length > 0;
}

function nodeKey(node: Node, ids: ValueIds): string {
  const attrs = [...node.attributes.values()].map((a) => a.key()).sort();
  const inputs = node.inputs.map((v) => (v ? ids.of(v) : "-"));
  const outputs = node.outputs.map((v) => (v ? "o" : "-")).join("");
  return `${node.domain}|${node.op}|${node.overload}|${inputs.join(",")}|${outputs}|${attrs.join(";")}`;
}

/** Short identities for values; names would do too, but these cannot collide across scopes. */
class ValueIds {
  private readonly ids = new Map<Value, number>();
  of(v: Value): number {
    let id = this.ids.get(v);
    if (id === undefined) this.ids.set(v, (id = this.ids.size));
    return id;
  }
}

/**
 * Merges initializers with equal dtype, dims and bytes. Candidates are grouped by the cheap facts
 * first (dtype, dims, byte length), so only tensors that could be equal get hashed, and a hash
 * match is confirmed byte for byte. Overridable initializers (also graph inputs) and graph
 * outputs keep their identity.
 */
function mergeEqualInitializers(graph: Graph, pinned: ReadonlySet<Value>, stats: CseStats): void {
  const groups = new Map<string, Value[]>();
  for (const v of graph.initializers.values()) {
    if (v.isGraphInput || v.isGraphOutput || pinned.has(v)) continue;
    const t = v.initializer!;
    const key = `${t.dtype}|${t.dims.join("x")}|${t.byteLength}|${t.proto.stringData.length}`;
    const group = groups.get(key);
    if (group) group.push(v);
    else groups.set(key, [v]);
  }
  for (const group of groups.values()) {
    if (group.length < 2 || group[0]!.initializer!.byteLength > MAX_COMPARED_BYTES) continue;
    const byHash = new Map<string, Value[]>();
    for (const v of group) {
      const hash = v.initializer!.contentHash();
      const kept = byHash.get(hash)?.find((k) => sameBytes(k, v));
      if (kept) {
        v.replaceAllUsesWith(kept);
        graph.removeInitializer(v);
        stats.initializers++;
      } else byHash.set(hash, [...(byHash.get(hash) ?? []), v]);
    }
  }
}

function sameBytes(a: Value, b: Value): boolean {
  const ta = a.initializer!;
  const tb = b.initializer!;
  if (ta.proto.stringData.length > 0) return ta.proto.stringData.every((s, i) => Buffer.compare(s, tb.proto.stringData[i]!) === 0);
  return Buffer.compare(ta.bytes(), tb.bytes()) === 0;
}
