// TokenSelect against an oracle that does not read the rewritten graph: the vote is taken in plain
// TypeScript from the unrewritten model's own Q and K (test/helpers/attention-oracle.ts), as
// TokenSelect's released code takes it, and attention over the one kept set is computed there too; the
// rewritten graph's attention outputs and logits, and the indices its selection-cache contract
// reports, must match.
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { AttentionOracle, dense, groupedKvHead, maxDiff, topK, type KvHeadOf, type Policy } from "../../test/helpers/attention-oracle.ts";
import { AGREE, MATTERS, agreement, bufferedFeeds, expectAgreement, expectWrongKvHeadCaught, oracleCases, runRewritten } from "../../test/helpers/oracle-models.ts";
import { SELECTION_CACHE } from "../../runtime/contract-names.ts";
import { formatBudget, type Budget } from "./budget.ts";
import { createTokenSelect, tokenSelect, type TokenSelectOptions } from "./token-select.ts";

/** Votes closer than this at the top-k boundary could fall either way between float64 here and float32 there. */
const CLEAR_MARGIN = 1e-6;

interface Settings {
  /** Middle keys chosen: a count, or a share of the keys the step sees (rounded up). */
  topK: Budget;
  sinks: number;
  window: number;
  kernelSize: number;
}

/**
 * TokenSelect's vote as its released code takes it (retrieval_indices / get_topk_tokens), for a one-query step over N keys (the
 * new one last), with the budget B = top_k counting every key attended (docs/language.md): the
 * sinks take at most B - 1 of it, the window (the new key included) at least 1 and at most what
 * is left, the vote chooses the rest. All N keys when B >= N; else each head scores the middle
 * keys (after the sinks, before the window) by q.k, unscaled, normalises them with a softmax of
 * its own, the heads' probabilities are summed into one vote per key, max-pooled over
 * `kernelSize` keys when > 0, and the top_k voted keys with the sinks and the window are ONE set
 * every head attends to. Ties go to the lower index (ONNX TopK's rule).
 */
function tokenSelectPolicy(s: Settings, margins: number[], kvHeadOf: KvHeadOf = groupedKvHead): Policy {
  return (step) => {
    const N = step.N;
    const budget = "tokens" in s.topK ? s.topK.tokens : Math.ceil((N * s.topK.percent) / 100);
    if (budget >= N) return dense(step);
    const sinks = Math.min(s.sinks, budget - 1);
    const window = Math.max(1, Math.min(s.window, budget - sinks));
    const k = budget - sinks - window;
    const middle = Array.from({ length: N - window - sinks }, (_, i) => sinks + i);
    const votes = new Float64Array(middle.length);
    for (let h = 0; h < step.heads; h++) {
      const q = step.q(h);
      const logits = middle.map((n) => {
        const k = step.k(kvHeadOf(step, h), n);
        let dot = 0;
        for (let d = 0; d < step.D; d++) dot += q[d]! * k[d]!;
        return dot;
      });
      const max = Math.max(...logits);
      const e = logits.map((x) => Math.exp(x - max));
      const total = e.reduce((a, b) => a + b, 0);
      e.forEach((x, i) => (votes[i] += x / total));
    }
    const half = (s.kernelSize - 1) / 2;
    const pooled = s.kernelSize > 0 ? Array.from(votes, (_, i) => Math.max(...votes.subarray(Math.max(0, i - half), i + half + 1))) : Array.from(votes);
    const chosen = topK(pooled, k);
    margins.push(chosen.margin);
    const kept = [...Array.from({ length: sinks }, (_, i) => i), ...chosen.indices.map((i) => middle[i]!), ...Array.from({ length: window }, (_, i) => N - window + i)];
    return Array.from({ length: step.heads }, () => kept);
  };
}

const PAST = 56;
const SETTINGS: Settings[] = [
  { topK: { tokens: 10 }, sinks: 2, window: 4, kernelSize: -1 },
  { topK: { tokens: 22 }, sinks: 4, window: 8, kernelSize: -1 },
  { topK: { tokens: 14 }, sinks: 3, window: 5, kernelSize: 3 },
  { topK: { percent: 12.5 }, sinks: 2, window: 4, kernelSize: -1 },
  { topK: { percent: 25 }, sinks: 2, window: 4, kernelSize: -1 },
];
const passOptions = (s: Settings): TokenSelectOptions => ({ topK: s.topK, sinks: s.sinks, window: s.window, kernelSize: s.kernelSize });

describe("tokenselect agrees with a TypeScript oracle on the unrewritten model's Q and K", () => {
  for (const c of oracleCases()) {
    for (const s of SETTINGS) {
      const label = `${c.name}: ${s.sinks} sinks, window ${s.window}, top_k ${formatBudget(s.topK)}${s.kernelSize > 0 ? `, pooled over ${s.kernelSize}` : ""}`;
      it.skipIf(c.skip !== undefined)(`${label}${c.skip ? ` (skipped: ${c.skip})` : ""}`, async () => {
        const oracle = await AttentionOracle.create(c.load);
        try {
          const feeds = oracle.feeds(PAST, 13);
          const margins: number[] = [];
          const want = await oracle.run(feeds, tokenSelectPolicy(s, margins));
          expect(Math.min(...margins)).toBeGreaterThan(CLEAR_MARGIN);
          const sparse = await runRewritten(c, oracle.layers, (m) => tokenSelect(m, passOptions(s)), feeds);
          expect(sparse.rewritten).toBe(c.layers);
          expectAgreement(want, sparse);
          expect(maxDiff(want.logits, (await oracle.run(feeds, dense)).logits)).toBeGreaterThan(MATTERS);
          await expectWrongKvHeadCaught(oracle, feeds, tokenSelectPolicy(s, [], (st, h) => h % st.kvHeads), want, sparse);
        } finally {
          await oracle.release();
        }
      });
    }
  }
});

describe("tokenselect's selection-cache contract reports the oracle's kept rows", () => {
  const s = SETTINGS[0]!;
  for (const c of oracleCases().filter((c) => c.name.startsWith("reference"))) {
    it.skipIf(c.skip !== undefined)(c.name, async () => {
      const oracle = await AttentionOracle.create(c.load);
      try {
        const feeds = oracle.feeds(PAST, 17);
        const margins: number[] = [];
        const want = await oracle.run(feeds, tokenSelectPolicy(s, margins));
        expect(Math.min(...margins)).toBeGreaterThan(CLEAR_MARGIN);
        // A first step: no cached fingerprint (zeros never pass the cosine test), no cached rows.
        const noCache = (session: ort.InferenceSession) => {
          const extra: Record<string, ort.Tensor> = {};
          for (const l of oracle.layers) {
            extra[`${SELECTION_CACHE.cachedFingerprint}.${l.layer}`] = new ort.Tensor("float32", new Float32Array(l.heads * l.headDim), [l.heads * l.headDim]);
            extra[`${SELECTION_CACHE.cachedIndices}.${l.layer}`] = new ort.Tensor("int64", new BigInt64Array(0), [0]);
          }
          expect(session.inputNames).toEqual(expect.arrayContaining(Object.keys(extra)));
          return extra;
        };
        const options = { ...passOptions(s), selectionCache: { threshold: 0.9 } };
        const sparse = await runRewritten(c, oracle.layers, (m) => tokenSelect(m, options), feeds, noCache);
        oracle.layers.forEach((l, i) => {
          // The graph reports the middle rows the vote chose; the sinks and the window (this budget
          // holds both whole) are attended besides.
          const reported = Array.from(sparse.outputs[`${SELECTION_CACHE.indices}.${l.layer}`]!.data as BigInt64Array, Number);
          const chosenRows = want.attended[i]![0]!.filter((n) => n >= s.sinks && n < PAST + 1 - s.window);
          expect(reported).toEqual(chosenRows);
          expect(Array.from(sparse.outputs[`${SELECTION_CACHE.reused}.${l.layer}`]!.data as Uint8Array)).toEqual([0]);
        });
        expect(agreement(want, sparse).logits).toBeLessThanOrEqual(AGREE);
      } finally {
        await oracle.release();
      }
    });
  }
});

describe("tokenselect on an append-only buffer (as a .pipe compiles it) agrees with the oracle on the exact cache", () => {
  const s = SETTINGS[3]!;
  for (const c of oracleCases()) {
    it.skipIf(c.skip !== undefined)(`${c.name}${c.skip ? ` (skipped: ${c.skip})` : ""}`, async () => {
      const oracle = await AttentionOracle.create(c.load);
      try {
        const feeds = oracle.feeds(PAST, 37);
        const margins: number[] = [];
        const want = await oracle.run(feeds, tokenSelectPolicy(s, margins));
        expect(Math.min(...margins)).toBeGreaterThan(CLEAR_MARGIN);
        let appendOnly = false;
        const pass = createTokenSelect({ ...passOptions(s), appendOnly: true });
        const rewrite = (m: Parameters<typeof tokenSelect>[0]) => {
          const stats = pass.run(m, { options: {}, note: () => {} }).stats!;
          appendOnly = stats["kv-append-only"] === 1;
          return stats["layers"]!;
        };
        // The graph reads a buffer with spare rows after the cache's, hidden by the mask.
        const sparse = await runRewritten(c, oracle.layers, rewrite, feeds, () => bufferedFeeds(feeds, 9, 41));
        expect(appendOnly).toBe(true);
        expectAgreement(want, sparse);
      } finally {
        await oracle.release();
      }
    });
  }
});
