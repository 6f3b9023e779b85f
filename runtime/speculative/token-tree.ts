// The token trees Token Recycling and DySpec verify in one target call: the paper's static
// template, and what a call's answer keeps (the longest path the target agrees with).
import type { DecoderSequence } from "../decoder.ts";

/**
 * The paper's static tree "2.2.2": 80 draft nodes under the root, each a path of child ranks
 * (rank r = the parent token's r-th likeliest successor), parents listed before children.
 */
export const PAPER_TREE: readonly (readonly number[])[] = (() => {
  const d1 = range(8).map((r) => [r]);
  const d2 = [[0, 8], [1, 4], [2, 3], [3, 2], [4, 1], [5, 1], [6, 1], [7, 1]].flatMap(([p, n]) => range(n!).map((c) => [p!, c]));
  const d3 = [[[0, 0], 8], [[0, 1], 3], [[0, 2], 2], [[0, 3], 1], [[0, 4], 1], [[0, 5], 1], [[0, 6], 1], [[0, 7], 1], [[1, 0], 2], [[1, 1], 1], [[2, 0], 1], [[3, 0], 1], [[4, 0], 1], [[5, 0], 1]] as [number[], number][];
  const d4 = [[[0, 0, 0], 5], [[0, 0, 1], 2], [[0, 0, 2], 1], [[0, 0, 3], 1], [[0, 0, 4], 1], [[0, 1, 0], 1], [[0, 2, 0], 1], [[1, 0, 0], 1], [[2, 0, 0], 1], [[3, 0, 0], 1]] as [number[], number][];
  const d5 = [[[0, 0, 0, 0], 3], [[0, 0, 0, 1], 1], [[0, 0, 0, 2], 1], [[0, 0, 1, 0], 1], [[0, 1, 0, 0], 1], [[1, 0, 0, 0], 1]] as [number[], number][];
  const d6 = [[[0, 0, 0, 0, 0], 2], [[0, 0, 0, 1, 0], 1]] as [number[], number][];
  const children = (groups: [number[], number][]) => groups.flatMap(([parent, n]) => range(n).map((c) => [...parent, c]));
  return [...d1, ...d2, ...children(d3), ...children(d4), ...children(d5), ...children(d6)];
})();

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** A tree template as flat arrays; node 0 is the root (the decided token), nodes 1.. the drafts. */
export class TreeTemplate {
  readonly parents: number[] = [-1];
  readonly ranks: number[] = [0];
  readonly depths: number[] = [0];
  /** The likeliest successor, its likeliest successor, ...: the rank-0 path below the root. */
  readonly firstChildChain: number[] = [];
  private readonly maxDepth: number;
  /** `draftsWithin`'s answers, per depth: steps ask the same few every time. */
  private readonly within = new Map<number, readonly number[]>();

  constructor(paths: readonly (readonly number[])[]) {
    const index = new Map<string, number>([["", 0]]);
    for (const path of paths) {
      const parent = index.get(path.slice(0, -1).join(","));
      if (parent === undefined) throw new RangeError(`tree path [${path.join(", ")}] comes before its parent`);
      index.set(path.join(","), this.parents.length);
      this.parents.push(parent);
      this.ranks.push(path[path.length - 1]!);
      this.depths.push(path.length);
    }
    this.maxDepth = Math.max(...this.depths);
    for (let node = 0; ; ) {
      const child = this.parents.findIndex((p, i) => p === node && this.ranks[i] === 0);
      if (child < 0) break;
      this.firstChildChain.push((node = child));
    }
  }

  /** The draft nodes (the root excluded) at most `depth` below the root, in template order. */
  draftsWithin(depth: number): readonly number[] {
    depth = Math.min(depth, this.maxDepth);
    let nodes = this.within.get(depth);
    if (!nodes) this.within.set(depth, (nodes = range(this.size).filter((n) => n > 0 && this.depths[n]! <= depth)));
    return nodes;
  }

  get size(): number {
    return this.parents.length;
  }
}

/**
 * After a tree call at cache row `start` and position `position`, keeps the rows of the accepted
 * `path` (node indices into the call, root first) packed after the context.
 */
export function keepPath(sequence: DecoderSequence, start: number, position: number, path: readonly number[]): void {
  // A path along the call's first rows (the root alone, or a chain BFS put first) needs no copy.
  if (path.every((node, i) => node === i)) sequence.truncate(start + path.length);
  else sequence.gather([...range(start), ...path.map((i) => start + i)], position + path.length);
}

/**
 * Positions (into the call's tokens) of the longest root-to-node path where each token is the
 * target's argmax after its parent; siblings may repeat a token, so every match is explored.
 */
export function longestAgreeingPath(ids: readonly number[], parents: readonly number[], greedy: readonly number[]): number[] {
  const children: number[][] = ids.map(() => []);
  parents.forEach((p, i) => p >= 0 && children[p]!.push(i));
  const longest = (node: number): number[] => {
    let best: number[] = [];
    for (const c of children[node]!) {
      if (ids[c] !== greedy[node]) continue;
      const below = longest(c);
      if (below.length > best.length) best = below;
    }
    return [node, ...best];
  };
  return longest(0);
}
