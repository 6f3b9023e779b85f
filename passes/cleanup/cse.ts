import type { Graph } from "../../graph/ir/graph.ts";
import type { Model } from "../../graph/ir/model.ts";
import type { Node } from "../../graph/ir/node.ts";
import type { Tensor } from "../../graph/ir/tensor.ts";
import type { Value } from "../../graph/ir/value.ts";
import type { Pass, PassResult } from "../../graph/pass-manager/pass.ts";
import { TOPOLOGICALLY_SORTED } from "../../graph/pass-manager/properties.ts";
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
  const standard = node.domain === "" || node.domain === "ai.onnx";
  return node.subgraphs().length === 0 && !(standard && NON_DETERMINISTIC.has(node.op)) && node.outputs.length > 0;
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
 * Merges initializers with equal dtype, dims and bytes. Candidates are narrowed by ever dearer
 * facts: dtype, dims and byte length (free), then the first 4 KiB (one small read), then a hash of
 * the content; a hash match is confirmed byte for byte. Layers of one model share shapes, so
 * without the prefix step every weight of a large model would be read. Overridable initializers
 * (also graph inputs), graph outputs and values a subgraph returns keep their identity.
 */
function mergeEqualInitializers(graph: Graph, pinned: ReadonlySet<Value>, stats: CseStats): void {
  const candidates = [...graph.initializers.values()].filter((v) => !v.isGraphInput && !v.isGraphOutput && !pinned.has(v));
  let groups = refine([candidates], (t) => `${t.dtype}|${t.dims.join("x")}|${t.byteLength}|${t.proto.stringData.length}`);
  groups = groups.filter((g) => g[0]!.initializer!.byteLength <= MAX_COMPARED_BYTES);
  groups = refine(groups, prefixKey);
  for (const group of refine(groups, (t) => t.contentHash())) {
    const kept: Value[] = [];
    for (const v of group) {
      const same = kept.find((k) => sameBytes(k, v));
      if (!same) {
        kept.push(v);
        continue;
      }
      v.replaceAllUsesWith(same);
      graph.removeInitializer(v);
      stats.initializers++;
    }
  }
}

/** Splits each group by `key`, keeping only the parts with at least two members. */
function refine(groups: Value[][], key: (t: Tensor) => string): Value[][] {
  const out: Value[][] = [];
  for (const group of groups) {
    const parts = new Map<string, Value[]>();
    for (const v of group) {
      const k = key(v.initializer!);
      const part = parts.get(k);
      if (part) part.push(v);
      else parts.set(k, [v]);
    }
    for (const part of parts.values()) if (part.length > 1) out.push(part);
  }
  return out;
}

const PREFIX_BYTES = 4096;

/** The first bytes of a tensor's data, read without reading the rest. */
function prefixKey(t: Tensor): string {
  if (t.proto.stringData.length > 0) return "";
  const range = t.range;
  const prefix = range ? range.source.read(range.offset, Math.min(PREFIX_BYTES, range.length)) : t.bytes().subarray(0, PREFIX_BYTES);
  return Buffer.from(prefix.buffer, prefix.byteOffset, prefix.byteLength).toString("latin1");
}

function sameBytes(a: Value, b: Value): boolean {
  const ta = a.initializer!;
  const tb = b.initializer!;
  if (ta.proto.stringData.length > 0) return ta.proto.stringData.every((s, i) => Buffer.compare(s, tb.proto.stringData[i]!) === 0);
  return Buffer.compare(ta.bytes(), tb.bytes()) === 0;
}
