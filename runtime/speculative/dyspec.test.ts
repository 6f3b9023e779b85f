// DySpec's tree growth on hand-made successor tables: greedy by path probability under the node
// budget and depth limit, parents before children, successors asked for only where the tree grows.
import { describe, expect, it } from "vitest";
import { growTree, treePrefix, type GrownTree, type Successors } from "./dyspec.ts";

/** Successors by token: token t's likeliest successors and their probabilities. */
function table(rows: Record<number, [number[], number[]]>): (tree: GrownTree, node: number) => Successors {
  return (tree, node) => {
    const [ids, probs] = rows[tree.tokens[node]!] ?? [[], []];
    return { ids, probs };
  };
}

/** Every (parent, token) path value by brute force: the best `budget` nodes of a tree, as a multiset of values. */
function bestValues(successors: (tree: GrownTree, node: number) => Successors, root: number, budget: number, maxDepth: number): number[] {
  // Enumerate the full tree to maxDepth and take the budget largest values (a child never exceeds its parent, so they form a tree).
  const all: number[] = [];
  const walk = (tree: GrownTree, node: number, value: number, depth: number) => {
    if (depth === maxDepth) return;
    const { ids, probs } = successors(tree, node);
    for (let r = 0; r < ids.length; r++) {
      if (!(probs[r]! > 0)) continue;
      const child = tree.tokens.length;
      tree.tokens.push(ids[r]!);
      tree.parents.push(node);
      tree.depths.push(depth + 1);
      tree.values.push(value * probs[r]!);
      all.push(value * probs[r]!);
      walk(tree, child, value * probs[r]!, depth + 1);
    }
  };
  walk({ tokens: [root], parents: [-1], depths: [0], values: [1] }, 0, 1, 0);
  return all.sort((a, b) => b - a).slice(0, budget);
}

describe("DySpec tree growth", () => {
  const rows: Record<number, [number[], number[]]> = {
    0: [[1, 2, 3], [0.6, 0.3, 0.1]],
    1: [[4, 5], [0.9, 0.05]],
    2: [[6, 7], [0.5, 0.5]],
    3: [[8], [1]],
    4: [[9, 1], [0.95, 0.05]],
    5: [[1], [1]],
    6: [[1], [1]],
    7: [[1], [1]],
    8: [[1], [1]],
    9: [[4, 2], [0.8, 0.2]],
  };

  it("adds the nodes of highest path probability, parents first, values non-increasing", async () => {
    for (const budget of [1, 3, 6, 10]) {
      const tree = await growTree(0, budget, 8, table(rows));
      expect(tree.tokens.length - 1).toBe(budget);
      tree.parents.slice(1).forEach((p, i) => expect(p).toBeLessThan(i + 1));
      for (let n = 2; n < tree.values.length; n++) expect(tree.values[n]!).toBeLessThanOrEqual(tree.values[n - 1]! + 1e-12);
      const expected = bestValues(table(rows), 0, budget, 8);
      tree.values.slice(1).forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 12));
    }
  });

  it("a confident chain grows deep where a fixed template would spread", async () => {
    const tree = await growTree(0, 4, 8, table(rows));
    // 0 -> 1 (0.6) -> 4 (0.54) -> 9 (0.513) -> 4 (0.41): four levels deep; then 2 (0.3) would come next.
    expect(tree.tokens).toEqual([0, 1, 4, 9, 4]);
    expect(tree.depths).toEqual([0, 1, 2, 3, 4]);
  });

  it("keeps to the depth limit and the budget, and stops when nothing is left to add", async () => {
    const shallow = await growTree(0, 10, 1, table(rows));
    expect(shallow.tokens).toEqual([0, 1, 2, 3]);
    expect((await growTree(0, 0, 8, table(rows))).tokens).toEqual([0]);
    expect((await growTree(5, 10, 3, table({ 5: [[1], [1]], 1: [[], []] }))).tokens).toEqual([5, 1]);
  });

  it("asks for a node's successors only when the node's own value is the best on offer", async () => {
    const asked: number[] = [];
    const lookup = table(rows);
    await growTree(0, 4, 8, (tree, node) => {
      asked.push(tree.tokens[node]!);
      return lookup(tree, node);
    });
    // The chain 0 1 4 9 and the last 4 (a leaf at the budget: never asked).
    expect(asked).toEqual([0, 1, 4, 9]);
  });

  it("a prefix is a tree: the first n nodes", async () => {
    const tree = await growTree(0, 6, 8, table(rows));
    const prefix = treePrefix(tree, 3);
    expect(prefix.tokens).toEqual(tree.tokens.slice(0, 4));
    expect(prefix.parents).toEqual(tree.parents.slice(0, 4));
  });
});
