// Feeds for a model compiled with the tree-attention-mask pass: an additive mask
// tree_attention_mask [1, 1, S, P + S] and positions past + depth. A step's new tokens form a
// tree given by parent indices (-1: the node hangs under the cached context); a chain
// (parents i - 1) is ordinary causal decoding.
import * as ort from "onnxruntime-node";
import type { StreamingConfig } from "./kv-policies/streaming.ts";

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

/**
 * [1, 1, S, past + S]: 0 where a node sees the context or an ancestor (itself included), -inf
 * elsewhere. With `streaming` (a StreamingLLM model verifying drafts) a node at cache row q
 * (past + its depth) also sees only what a one-token step at q would: the first `sinks` rows and
 * the `window` most recent (q included). Rows count in the cache's own order, which eviction
 * keeps (it drops rows no later step sees).
 */
export function treeMaskTensor(past: number, parents: readonly number[], streaming?: StreamingConfig): ort.Tensor {
  const S = parents.length;
  const N = past + S;
  const data = new Float32Array(S * N).fill(-Infinity);
  const depths = streaming ? treeDepths(parents) : undefined;
  for (let i = 0; i < S; i++) {
    const q = past + (depths ? depths[i]! : 0);
    const sees = (row: number) => !streaming || row < streaming.sinks || row > q - streaming.window;
    if (!streaming) data.fill(0, i * N, i * N + past);
    else for (let r = 0; r < past; r++) if (sees(r)) data[i * N + r] = 0;
    for (let a = i; a >= 0; a = parents[a]!) if (sees(past + (depths?.[a] ?? 0))) data[i * N + past + a] = 0;
  }
  return new ort.Tensor("float32", data, [1, 1, S, N]);
}

/**
 * treeMaskTensor with the common case made free: a one-token step without StreamingLLM sees the
 * whole context and itself, an all-zero row, served as a view of one zero buffer that grows by
 * doubling. Allocating and filling [1, 1, 1, P + 1] each step is a measurable share of a small
 * model's decode step. onnxruntime only reads its inputs, so the buffer stays zero.
 */
export class TreeMasks {
  private zeros = new Float32Array(0);

  tensor(past: number, parents: readonly number[], streaming?: StreamingConfig): ort.Tensor {
    if (parents.length !== 1 || streaming) return treeMaskTensor(past, parents, streaming);
    const N = past + 1;
    if (this.zeros.length < N) this.zeros = new Float32Array(Math.max(N, 2 * this.zeros.length));
    return new ort.Tensor("float32", this.zeros.subarray(0, N), [1, 1, 1, N]);
  }
}
