import { Builder } from "../ir/builder.ts";
import type { Graph } from "../ir/graph.ts";
import type { Node } from "../ir/node.ts";
import { Value } from "../ir/value.ts";
import type { Match } from "./match.ts";
import type { Rule } from "./rule.ts";

/**
 * Replaces a match by what the rule builds: the new nodes go just before the matched root, the
 * root's outputs are redirected to the replacements, and matched nodes left without readers are
 * removed. A replacement the rule just created takes over the old value itself (its name, type
 * and value_info), so graph output names and recorded shapes survive the rewrite.
 */
export function commitMatch(rule: Rule, match: Match): void {
  const root = match.root;
  const graph = root.graph!;
  const b = new Builder(graph, { before: root, provenance: rule.name });
  const result = rule.rewrite(b, match);
  const replacements = result instanceof Value ? [result] : result;
  const fresh = new Set(b.created.flatMap((n) => n.outputs).filter((v): v is Value => v !== undefined));
  // A fresh value given for two outputs is adopted by the first; the second then follows that one.
  const adopted = new Map<Value, Value>();
  root.outputs.forEach((old, i) => {
    if (!old) return;
    const given = replacements[i];
    const next = given && (adopted.get(given) ?? given);
    if (next === undefined) {
      if (old.unused) return;
      throw new Error(`rule '${rule.name}' returned no replacement for ${old} (output ${i} of ${root.describe()}), which is still used`);
    }
    if (next === old) return;
    if (fresh.has(next) && !next.isGraphOutput) {
      fresh.delete(next);
      adopted.set(next, old);
      adopt(graph, old, next);
    } else if (old.isGraphOutput) {
      adopt(graph, old, b.node("Identity", [next]).output(0));
    } else {
      old.replaceAllUsesWith(next);
    }
  });
  removeDead(match.nodes);
}

/** Makes the producer of `fresh` produce `old` instead, and the old producer the now unread `fresh`. */
function adopt(graph: Graph, old: Value, fresh: Value): void {
  const oldProducer = old.producer!;
  const oldIndex = old.outputIndex;
  const newProducer = fresh.producer!;
  const newIndex = fresh.outputIndex;
  fresh.replaceAllUsesWith(old);
  graph.attachOutput(newProducer, old, newIndex);
  graph.attachOutput(oldProducer, fresh, oldIndex);
}

/** Removes the nodes no one reads any more; consumers go first so their producers free up. */
function removeDead(nodes: readonly Node[]): void {
  let pending = nodes.filter((n) => n.graph);
  let removed = true;
  while (removed && pending.length > 0) {
    removed = false;
    pending = pending.filter((n) => {
      if (!n.outputs.every((o) => !o || o.unused)) return true;
      n.graph!.remove(n);
      removed = true;
      return false;
    });
  }
}
