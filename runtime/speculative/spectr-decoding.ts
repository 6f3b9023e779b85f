// SpecTr decoding on a target compiled with the tree-attention-mask pass: each step samples k
// drafts i.i.d. from the draft model, verifies their trie in one target call with K-SEQ at each
// position (spectr.ts) and compacts the KV cache to the accepted path. Lossless in distribution
// for sampled decoding; greedy decoding has nothing to gain (k greedy drafts are one draft) and
// is refused.
import type { DecoderModel, DecoderSequence } from "../decoder.ts";
import { RuntimeError } from "../errors.ts";
import type { LogitsProcessor } from "../sampling/processors.ts";
import { createRng, type Rng } from "../sampling/rng.ts";
import type { SamplingConfig } from "../sampling/sampler.ts";
import { floatData, readFloatRow } from "../tensors.ts";
import { DraftModel } from "./draft-model.ts";
import { refuseTreeOnRecurrent } from "./recurrent-rollback.ts";
import { buildTrie, verifyTrie, type DraftTrie } from "./spectr.ts";
import { SpeculativeTally, type SpeculativeStats } from "./stats.ts";
import { keepPath } from "./token-tree.ts";
import { createWarp, softmaxInPlace, type Warp } from "./warp.ts";

/** k drafts of L tokens when not given. */
export const SPECTR_DRAFTS = 4;
export const SPECTR_DRAFT_LENGTH = 4;

/** `speculate: { kind: "spectr", model }` in the generator's options. */
export interface SpecTrSpeculation {
  kind: "spectr";
  /** The draft model (the target's vocabulary). */
  model: DecoderModel;
  /** Drafts sampled per step (k; default SPECTR_DRAFTS). */
  drafts?: number;
  /** Tokens per draft (L; default SPECTR_DRAFT_LENGTH). */
  draftLength?: number;
}

export class SpecTrDecoding {
  readonly name = "spectr";
  private readonly tally = new SpeculativeTally();
  private readonly row: Float32Array;
  /** Draft tokens sampled (k per position; the trie verifies each distinct prefix once). */
  sampledTokens = 0;

  private constructor(
    private readonly sequence: DecoderSequence,
    private readonly source: DraftModel,
    private readonly warp: Warp,
    private readonly rng: Rng,
    private readonly drafts: number,
    private readonly draftLength: number,
    private readonly vocabSize: number,
  ) {
    this.row = new Float32Array(vocabSize);
  }

  static create(sequence: DecoderSequence, vocabSize: number, options: SpecTrSpeculation, sampling: SamplingConfig = {}, processors: readonly LogitsProcessor[] = []): SpecTrDecoding {
    if (!sequence.model.contract.hasTreeMask) throw new RuntimeError("no-tree-attention", "SpecTr verifies a trie of drafts in one call: compile the target with the tree-attention-mask pass");
    if (!sampling.temperature) throw new RuntimeError("bad-speculation", "spectr samples k drafts i.i.d.: it needs sampled decoding (a temperature above 0); greedy drafts would all be the same draft");
    refuseTreeOnRecurrent(sequence.model, "SpecTr");
    const drafts = options.drafts ?? SPECTR_DRAFTS;
    const draftLength = options.draftLength ?? SPECTR_DRAFT_LENGTH;
    for (const [name, value] of [["drafts", drafts], ["draftLength", draftLength]] as const) {
      if (!Number.isInteger(value) || value < 1) throw new RuntimeError("bad-speculation", `spectr: ${name} must be a positive integer, got ${value}`);
    }
    const seed = sampling.seed ?? Math.floor(Math.random() * 2 ** 32);
    const source = new DraftModel(options.model, vocabSize, createWarp(sampling, vocabSize, processors), createRng(seed ^ 0x5bd1e995));
    return new SpecTrDecoding(sequence, source, createWarp(sampling, vocabSize, processors), createRng(seed ^ 0x2545f491), drafts, draftLength, vocabSize);
  }

  /** `token` is decided and is the last of `context`, not yet in the target's cache; returns the accepted drafts and the next token. */
  async step(token: number, context: readonly number[], limit: number): Promise<number[]> {
    const length = Math.min(this.draftLength, limit);
    const drafts = [];
    if (length >= 1) for (let i = 0; i < this.drafts; i++) drafts.push(await this.source.propose(context, length));
    this.sampledTokens += drafts.reduce((n, d) => n + d.tokens.length, 0);
    const trie = buildTrie(token, drafts.map((d) => ({ tokens: d.tokens, probs: d.probs! })));
    const [start, position] = [this.sequence.length, this.sequence.position];
    const t0 = performance.now();
    const logits = await this.sequence.forward(trie.tokens, trie.parents);
    const V = logits.dims[logits.dims.length - 1]!;
    if (V !== this.vocabSize) throw new RuntimeError("vocabulary-changed", `the target's logits cover ${V} token ids, not the ${this.vocabSize} its first call returned`);
    const data = floatData(logits);
    const { path, next } = verifyTrie(trie, (node) => this.targetProbs(data, V, node, trie, context), this.rng);
    keepPath(this.sequence, start, position, path);
    this.tally.record(trie.tokens.length - 1, path.length - 1, performance.now() - t0);
    return [...path.slice(1).map((n) => trie.tokens[n]!), next];
  }

  /** The target's warped distribution after `node`: its row, processed against the context plus the node's path. */
  private targetProbs(data: ReturnType<typeof floatData>, V: number, node: number, trie: DraftTrie, context: readonly number[]): Float32Array {
    const path: number[] = [];
    for (let n = node; n > 0; n = trie.parents[n]!) path.unshift(trie.tokens[n]!);
    readFloatRow(data, node * V, this.row);
    this.warp.process(this.row, { tokens: [...context, ...path] });
    return softmaxInPlace(Float32Array.from(this.row));
  }

  stats(generatedTokens: number): SpeculativeStats {
    return this.tally.summary(this.name, this.source.draftMs, generatedTokens);
  }

  async release(): Promise<void> {
    await this.source.release();
  }
}
