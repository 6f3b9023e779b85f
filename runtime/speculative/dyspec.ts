// DySpec (Xiong et al., arXiv 2410.11744): the draft tree is grown at run time,
// always adding the candidate with the highest estimated chance of acceptance: the product of
// the draft probabilities along its path. A candidate is a node's next-likeliest successor not
// yet in the tree; adding it offers its own likeliest successor and its parent's next one. Under
// a node budget this puts the nodes where the draft is confident (a long chain where it is sure,
// a bushy root where it is not), where a static template spends the same nodes on fixed ranks.
//
// Successors are asked for lazily: a node enters the heap at its own value (an upper bound on
// every child's) and its successors are fetched only when that bound is the best on offer, so a
// draft model is called only for nodes whose children can still make the tree (greedy order is
// unchanged: a child's value never exceeds its parent's).

/** A node's successors, likeliest first, with their draft probabilities. */
export interface Successors {
  ids: ArrayLike<number>;
  probs: ArrayLike<number>;
}

/** A grown tree: node 0 is the root (the decided token); nodes in the order added, parents first, values non-increasing. */
export interface GrownTree {
  tokens: number[];
  parents: number[];
  depths: number[];
  /** Estimated chance that the node's whole path is accepted (1 for the root). */
  values: number[];
}

interface Candidate {
  value: number;
  node: number;
  /** The successor rank offered; -1: the node itself, its successors not fetched yet. */
  rank: number;
}

/**
 * Grows a tree of at most `budget` draft nodes, none deeper than `maxDepth`, under `root`.
 * `successors(tree, node)` gives a node's successors (it may run a draft model on the node's path).
 */
export async function growTree(root: number, budget: number, maxDepth: number, successors: (tree: GrownTree, node: number) => Successors | Promise<Successors>): Promise<GrownTree> {
  const tree: GrownTree = { tokens: [root], parents: [-1], depths: [0], values: [1] };
  const known: (Successors | undefined)[] = [undefined];
  const heap = new MaxHeap<Candidate>((a, b) => a.value - b.value || b.node - a.node);
  if (budget >= 1 && maxDepth >= 1) heap.push({ value: 1, node: 0, rank: -1 });
  const offer = (node: number, rank: number) => {
    const next = known[node]!;
    if (rank < next.ids.length && next.probs[rank]! > 0) heap.push({ value: tree.values[node]! * next.probs[rank]!, node, rank });
  };
  while (tree.tokens.length <= budget && heap.size > 0) {
    const { value, node, rank } = heap.pop()!;
    if (rank < 0) {
      known[node] = await successors(tree, node);
      offer(node, 0);
      continue;
    }
    const child = tree.tokens.length;
    tree.tokens.push(known[node]!.ids[rank]!);
    tree.parents.push(node);
    tree.depths.push(tree.depths[node]! + 1);
    tree.values.push(value);
    known.push(undefined);
    offer(node, rank + 1);
    if (tree.depths[child]! < maxDepth) heap.push({ value, node: child, rank: -1 });
  }
  return tree;
}

/** The first `nodes` draft nodes of `tree` (a prefix keeps parents before children). */
export function treePrefix(tree: GrownTree, nodes: number): GrownTree {
  const n = nodes + 1;
  return { tokens: tree.tokens.slice(0, n), parents: tree.parents.slice(0, n), depths: tree.depths.slice(0, n), values: tree.values.slice(0, n) };
}

/** A binary max-heap. */
class MaxHeap<T> {
  private readonly items: T[] = [];

  constructor(private readonly compare: (a: T, b: T) => number) {}

  get size(): number {
    return this.items.length;
  }

  push(item: T): void {
    const a = this.items;
    a.push(item);
    for (let i = a.length - 1; i > 0; ) {
      const up = (i - 1) >> 1;
      if (this.compare(a[i]!, a[up]!) <= 0) break;
      [a[i], a[up]] = [a[up]!, a[i]!];
      i = up;
    }
  }

  pop(): T | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      a[0] = last;
      for (let i = 0; ; ) {
        const [l, r] = [2 * i + 1, 2 * i + 2];
        let best = i;
        if (l < a.length && this.compare(a[l]!, a[best]!) > 0) best = l;
        if (r < a.length && this.compare(a[r]!, a[best]!) > 0) best = r;
        if (best === i) break;
        [a[i], a[best]] = [a[best]!, a[i]!];
        i = best;
      }
    }
    return top;
  }
}
