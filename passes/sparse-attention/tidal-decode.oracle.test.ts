// TidalDecode against an oracle that does not read the rewritten graph: the selection is made in
// plain TypeScript from the unrewritten model's own Q and K (test/helpers/attention-oracle.ts),
// per query head against the KV head its group reads, and the sparse layers' attention over the
// chosen keys is computed there too; the rewritten graph's attention outputs and logits must match.
import { describe, expect, it } from "vitest";
import { AttentionOracle, dense, groupedKvHead, maxDiff, scores, topK, type KvHeadOf, type Policy } from "../../test/helpers/attention-oracle.ts";
import { MATTERS, bufferedFeeds, expectAgreement, expectWrongKvHeadCaught, oracleCases, runRewritten } from "../../test/helpers/oracle-models.ts";
import { formatBudget, type Budget } from "./budget.ts";
import { createTidalDecode, tidalDecode, type TidalDecodeOptions } from "./tidal-decode.ts";

/**
 * Top-k boundaries closer than this could fall either way between float64 here and float32 there
 * (scores of ~1 over 16-dimensional heads: float32 rounding is ~1e-6).
 */
const CLEAR_MARGIN = 1e-5;

/**
 * TidalDecode (Yang et al., ICLR 2025): layers below fullLayers and the selection layers attend to every key; a
 * selection layer picks, per query head, the topK keys with the highest scaled scores (a share
 * of the keys the step sees, rounded up, for a percentage); the layers
 * after it attend to those, until the next selection. Where the attention reads the model's KV
 * cache as Concat(past, new) the pass documents one deviation, kept here: the step's new row is
 * always attended and counts in the budget, so topK - 1 past rows are ranked (the paper ranks
 * the new row with the rest, as the pass does where it cannot see the cache: a K repeated to H
 * heads before the attention). `kvHeadOf` scores each query head against a KV head (the model's
 * mapping unless a test breaks it).
 */
function tidalPolicy(opts: { topK: Budget; fullLayers: number; selectLayers: number[] }, margins: number[], kvHeadOf: KvHeadOf = groupedKvHead): Policy {
  let selection: number[][] | undefined;
  return (step) => {
    const ranked = Array.from({ length: step.keyIsPresent ? step.N - 1 : step.N }, (_, n) => n);
    const always = step.keyIsPresent ? [step.N - 1] : [];
    if (step.layer < opts.fullLayers) return dense(step);
    if (opts.selectLayers.includes(step.layer)) {
      selection = Array.from({ length: step.heads }, (_, h) => {
        const budget = "tokens" in opts.topK ? opts.topK.tokens : Math.ceil((step.N * opts.topK.percent) / 100);
        const chosen = topK(scores(step, h, kvHeadOf(step, h), ranked), Math.min(budget - always.length, ranked.length));
        margins.push(chosen.margin);
        return [...chosen.indices, ...always];
      });
      return dense(step);
    }
    return selection ?? dense(step);
  };
}

const PAST = 48;

describe("tidal agrees with a TypeScript oracle on the unrewritten model's Q and K", () => {
  for (const c of oracleCases()) {
    // Two-layer exports: layer 0 selects, layer 1 is sparse. Deeper ones: layer 0 full, 1 selects, 2 sparse, 3 re-selects, 4 sparse.
    const roles = c.layers >= 5 ? { fullLayers: 1, selectLayers: [1, 3] } : { fullLayers: 0, selectLayers: [0] };
    for (const budget of [{ tokens: 3 }, { tokens: 8 }, { percent: 12.5 }] satisfies Budget[]) {
      it.skipIf(c.skip !== undefined)(`${c.name}, top_k ${formatBudget(budget)}${c.skip ? ` (skipped: ${c.skip})` : ""}`, async () => {
        const opts = { topK: budget, ...roles };
        const oracle = await AttentionOracle.create(c.load);
        try {
          const feeds = oracle.feeds(PAST, 11);
          const margins: number[] = [];
          const want = await oracle.run(feeds, tidalPolicy(opts, margins));
          expect(Math.min(...margins)).toBeGreaterThan(CLEAR_MARGIN);
          // The oracle's own check: dense attention computed here reproduces the unrewritten model.
          const denseRun = await oracle.run(feeds, dense);
          const passOptions: TidalDecodeOptions = { topK: budget, fullLayers: opts.fullLayers, selectLayers: opts.selectLayers };
          const sparse = await runRewritten(c, oracle.layers, (m) => tidalDecode(m, passOptions).sparse, feeds);
          expect(sparse.rewritten).toBe(c.layers - opts.fullLayers - opts.selectLayers.length);
          expectAgreement(want, sparse);
          expect(maxDiff(want.logits, denseRun.logits)).toBeGreaterThan(MATTERS);
          await expectWrongKvHeadCaught(oracle, feeds, tidalPolicy(opts, [], (s, h) => h % s.kvHeads), want, sparse);
        } finally {
          await oracle.release();
        }
      });
    }
  }
});

describe("tidal on an append-only buffer (as a .pipe compiles it) agrees with the oracle on the exact cache", () => {
  for (const c of oracleCases()) {
    const roles = c.layers >= 5 ? { fullLayers: 1, selectLayers: [1, 3] } : { fullLayers: 0, selectLayers: [0] };
    it.skipIf(c.skip !== undefined)(`${c.name}${c.skip ? ` (skipped: ${c.skip})` : ""}`, async () => {
      const opts = { topK: { percent: 12.5 }, ...roles };
      const oracle = await AttentionOracle.create(c.load);
      try {
        const feeds = oracle.feeds(PAST, 29);
        const margins: number[] = [];
        const want = await oracle.run(feeds, tidalPolicy(opts, margins));
        expect(Math.min(...margins)).toBeGreaterThan(CLEAR_MARGIN);
        let appendOnly = false;
        const pass = createTidalDecode({ topK: opts.topK, fullLayers: opts.fullLayers, selectLayers: opts.selectLayers, appendOnly: true });
        const rewrite = (m: Parameters<typeof tidalDecode>[0]) => {
          const stats = pass.run(m, { options: {}, note: () => {} }).stats!;
          appendOnly = stats["kv-append-only"] === 1;
          return stats["sparse"]!;
        };
        // The graph reads a buffer with spare rows after the cache's, hidden by the mask.
        const sparse = await runRewritten(c, oracle.layers, rewrite, feeds, () => bufferedFeeds(feeds, 9, 31));
        expect(appendOnly).toBe(true);
        expectAgreement(want, sparse);
      } finally {
        await oracle.release();
      }
    });
  }
});
