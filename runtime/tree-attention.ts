// Feeds for a model compiled with the tree-attention-mask pass: an additive mask
// tree_attention_mask [1, 1, S, P + S] and positions past + depth. A step's new tokens form a
// tree given by parent indices (-1: the node hangs under the cached context); a chain
// (parents i - 1) is ordinary causal decoding.
import * as ort from "onnxruntime-node";

export const TREE_MASK_INPUT = "tree_attention_mask";

/** Depth of each node (0 for a node under the context), parents before children. */
export function treeDepths(parents: readonly number[]): number[] {
  const depths: number[] = [];
  parents.forEach((p, i) => {
    if (p >= i) throw new RangeError(`tree node ${i} has parent ${p}: parents must come first`);
    depths.push(p < 0 ? 0 : depths[p] + 1);
  });
  return depths;
}

/** Parents of a chain of S tokens. */
export function chainParents(S: number): number[] {
  return Array.from({ length: S }, (_, i) => i - 1);
}

/** [1, 1, S, past + S]: 0 where a node sees the context or an ancestor (itself included), -inf elsewhere. */
export function treeMaskTensor(past: number, parents: readonly number[]): ort.Tensor {
  const S = parents.length;
  const N = past + S;
  const data = new Float32Array(S * N).fill(-Infinity);
  for (let i = 0; i < S; i++) {
    data.fill(0, i * N, i * N + past);
    for (let a = i; a >= 0; a = parents[a]) data[i * N + past + a] = 0;
  }
  return new ort.Tensor("float32", data, [1, 1, S, N]);
}
