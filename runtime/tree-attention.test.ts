import { describe, expect, it } from "vitest";
import { streamingKeep } from "./kv-policies/streaming.ts";
import { chainParents, treeDepths, treeMaskTensor, TreeMasks } from "./tree-attention.ts";

/** Per node, the key columns its mask opens (0), from a [1, 1, S, N] mask. */
function openColumns(past: number, parents: readonly number[], streaming?: { sinks: number; window: number }): number[][] {
  const mask = treeMaskTensor(past, parents, streaming);
  const [, , S, N] = mask.dims as number[];
  const data = mask.data as Float32Array;
  return Array.from({ length: S! }, (_, i) => Array.from({ length: N! }, (_, n) => n).filter((n) => data[i * N! + n] === 0));
}

describe("treeMaskTensor", () => {
  it("a chain without streaming is causal over the whole cache", () => {
    expect(openColumns(3, chainParents(2))).toEqual([[0, 1, 2, 3], [0, 1, 2, 3, 4]]);
  });

  it("a tree node sees the cache and its ancestors only", () => {
    // 0 under the context; 1 and 2 children of 0; 3 child of 2.
    expect(openColumns(2, [-1, 0, 0, 2])).toEqual([[0, 1, 2], [0, 1, 2, 3], [0, 1, 2, 4], [0, 1, 2, 4, 5]]);
  });

  it("with streaming, each query of a chain sees what a one-token step at its row would (runtime/kv-policies/streaming.ts's rows)", () => {
    const config = { sinks: 2, window: 4 };
    for (const past of [0, 3, 6, 9]) {
      const S = 5;
      openColumns(past, chainParents(S), config).forEach((open, i) => {
        const row = past + i;
        // A one-token step at `row` holds row + 1 keys; eviction would keep these of them.
        const keys = row + 1;
        expect(open, `past ${past}, query ${i}`).toEqual(streamingKeep(keys, config) ?? Array.from({ length: keys }, (_, n) => n));
      });
    }
  });

  it("with streaming, a tree node's window counts its depth, and ancestors beyond the window are masked", () => {
    const config = { sinks: 1, window: 2 };
    const parents = [-1, 0, 1, 0];
    expect(treeDepths(parents)).toEqual([0, 1, 2, 1]);
    // past 5: node 2 sits at row 7 and sees sink 0, ancestor 1 (row 6) and itself; its root (row 5) is out of the window.
    expect(openColumns(5, parents, config)).toEqual([[0, 4, 5], [0, 5, 6], [0, 6, 7], [0, 5, 8]]);
  });
});

describe("TreeMasks", () => {
  it("gives treeMaskTensor's mask for one-token steps as its buffer grows, interleaved with trees, chains and streaming", () => {
    const masks = new TreeMasks();
    const earlier: { past: number; data: Float32Array }[] = [];
    const cases: [number, number[], { sinks: number; window: number }?][] = [];
    for (let past = 0; past < 40; past++) {
      cases.push([past, [-1]]);
      if (past % 7 === 0) cases.push([past, [-1, 0, 0, 2]], [past, chainParents(3)], [past, [-1], { sinks: 1, window: 4 }]);
    }
    for (const [past, parents, streaming] of cases) {
      const got = masks.tensor(past, parents, streaming);
      const want = treeMaskTensor(past, parents, streaming);
      expect(got.dims, `past ${past}, parents ${parents}`).toEqual(want.dims);
      expect(Array.from(got.data as Float32Array), `past ${past}, parents ${parents}`).toEqual(Array.from(want.data as Float32Array));
      if (parents.length === 1 && !streaming) earlier.push({ past, data: got.data as Float32Array });
    }
    // Views handed out before the buffer grew still hold their (all-open) row.
    for (const { past, data } of earlier) expect(Array.from(data), `past ${past}`).toEqual(new Array(past + 1).fill(0));
  });
});
