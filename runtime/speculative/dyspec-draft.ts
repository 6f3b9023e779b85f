// DySpec with a draft model (Xiong et al., arXiv 2410.11744) for greedy decoding on a target compiled with
// the tree-attention-mask pass: each step grows a token tree from the draft model's
// distributions (dyspec.ts: always the candidate with the highest path probability, under a node
// budget), verifies it in one target call and keeps the longest path the target's argmax agrees
// with. `grow: "template"` fills the same number of nodes of the static template (the paper's
// tree, breadth-first prefix) from the draft's ranks instead, for comparison. The draft model runs
// once per node whose successors are needed, on that node's path (its cache follows by longest
// common prefix); it needs no tree mask. Lossless: every kept token is the target's argmax.
import type { DecoderModel, DecoderSequence, TopTokens } from "../decoder.ts";
import { RuntimeError } from "../errors.ts";
import type { LogitsProcessor } from "../sampling/processors.ts";
import { argmax, type SamplingConfig } from "../sampling/sampler.ts";
import type * as ort from "onnxruntime-node";
import { floatData, readFloatRow } from "../tensors.ts";
import { growTree, type GrownTree, type Successors } from "./dyspec.ts";
import { refuseTreeOnRecurrent } from "./recurrent-rollback.ts";
import { SpeculativeTally, type SpeculativeStats } from "./stats.ts";
import { RECYCLE_TOP_K, successorProbabilities, topK } from "./adjacency-matrix.ts";
import { paperTreeTemplate } from "./recycling-state.ts";
import { keepPath, longestAgreeingPath } from "./token-tree.ts";

/** Draft nodes per tree when none is given: one draft call per expanded node keeps the tree small on a CPU. */
export const DYSPEC_BUDGET = 16;

/** `speculate: { kind: "dyspec", model }` in the generator's options. */
export interface DySpecSpeculation {
  kind: "dyspec";
  /** The draft model (the target's vocabulary). */
  model: DecoderModel;
  /** Draft nodes per tree (default DYSPEC_BUDGET). */
  budget?: number;
  /** "dyspec" (default): grown by draft probability; "template": the static template's first `budget` nodes. */
  grow?: "dyspec" | "template";
}

/**
 * Observed acceptance by draft probability: DySpec's value assumes the draft's probability is the
 * chance its token is accepted, which holds for a calibrated draft and not for an overconfident
 * one (a layer-skipped self-draft). Each verified node whose parent was accepted is a trial in the
 * bucket of its draft probability; a bucket starts at its midpoint (two pseudo-trials), so an
 * unseen draft is taken at its word. Kept per target and draft across requests.
 */
export class AcceptanceByProbability {
  private static readonly BUCKETS = 10;
  private readonly hits = Float64Array.from({ length: AcceptanceByProbability.BUCKETS }, (_, b) => (2 * (b + 0.5)) / AcceptanceByProbability.BUCKETS);
  private readonly trials = new Float64Array(AcceptanceByProbability.BUCKETS).fill(2);

  private bucket(q: number): number {
    return Math.min(AcceptanceByProbability.BUCKETS - 1, Math.max(0, Math.floor(q * AcceptanceByProbability.BUCKETS)));
  }

  rate(q: number): number {
    const b = this.bucket(q);
    return this.hits[b]! / this.trials[b]!;
  }

  record(q: number, accepted: boolean): void {
    const b = this.bucket(q);
    this.trials[b]! += 1;
    if (accepted) this.hits[b]! += 1;
  }

  /** The counts, for the warm state (warm-state.ts). */
  snapshot(): { hits: number[]; trials: number[] } {
    return { hits: [...this.hits], trials: [...this.trials] };
  }

  /** Counts saved by `snapshot`; a RangeError when they are not ten buckets of counts with hits <= trials. */
  static restore(saved: { hits: readonly number[]; trials: readonly number[] }): AcceptanceByProbability {
    const n = AcceptanceByProbability.BUCKETS;
    const counts = (xs: readonly number[]) => Array.isArray(xs) && xs.length === n && xs.every((x) => typeof x === "number" && Number.isFinite(x) && x >= 0);
    if (!counts(saved.hits) || !counts(saved.trials) || saved.hits.some((h, b) => h > saved.trials[b]!)) throw new RangeError("not DySpec's acceptance buckets");
    const calibration = new AcceptanceByProbability();
    calibration.hits.set(saved.hits);
    calibration.trials.set(saved.trials);
    return calibration;
  }
}

const calibrations = new WeakMap<DecoderModel, WeakMap<DecoderModel, AcceptanceByProbability>>();

function calibrationFor(target: DecoderModel, draft: DecoderModel): AcceptanceByProbability {
  let calibration = knownCalibration(target, draft);
  if (!calibration) installCalibration(target, draft, (calibration = new AcceptanceByProbability()));
  return calibration;
}

/** What DySpec has learned of `draft`'s calibration against `target` in this process or from a warm state; undefined before either. */
export function knownCalibration(target: DecoderModel, draft: DecoderModel): AcceptanceByProbability | undefined {
  return calibrations.get(target)?.get(draft);
}

/** Takes `calibration` as what DySpec learned of `draft` against `target` (warm-state.ts restores a persisted one). */
export function installCalibration(target: DecoderModel, draft: DecoderModel, calibration: AcceptanceByProbability): void {
  let byDraft = calibrations.get(target);
  if (!byDraft) calibrations.set(target, (byDraft = new WeakMap()));
  byDraft.set(draft, calibration);
}

export class DySpecDraft {
  readonly name: string;
  private readonly tally = new SpeculativeTally();
  private readonly draft: DecoderSequence;
  /** The tokens the draft's cache holds, in order. */
  private held: number[] = [];
  private readonly row: Float32Array;
  private draftMs = 0;
  /** Draft model calls, one per node whose successors were needed. */
  draftCalls = 0;
  private readonly calibration: AcceptanceByProbability;

  private constructor(
    private readonly sequence: DecoderSequence,
    draftModel: DecoderModel,
    private readonly vocabSize: number,
    private readonly budget: number,
    private readonly grow: "dyspec" | "template",
  ) {
    this.name = grow === "dyspec" ? "dyspec" : "draft tree template";
    this.draft = draftModel.newSequence();
    this.calibration = calibrationFor(sequence.model, draftModel);
    this.row = new Float32Array(vocabSize);
  }

  static create(sequence: DecoderSequence, vocabSize: number, options: DySpecSpeculation, sampling: SamplingConfig = {}, processors: readonly LogitsProcessor[] = []): DySpecDraft {
    if (!sequence.model.contract.hasTreeMask) throw new RuntimeError("no-tree-attention", "DySpec verifies a token tree in one call: compile the target with the tree-attention-mask pass");
    const warped = sampling.temperature || (sampling.repetitionPenalty !== undefined && sampling.repetitionPenalty !== 1) || processors.length > 0;
    if (warped) throw new RuntimeError("bad-speculation", "dyspec verifies against the target's argmax: it needs greedy decoding without a repetition penalty or logits processors");
    refuseTreeOnRecurrent(sequence.model, "DySpec");
    if (options.model.contract.recurrent.length) throw new RuntimeError("bad-speculation", "dyspec runs its draft model on many paths: a draft with recurrent state cannot go back to a branch point; use draft speculation");
    const draftV = options.model.contract.vocabSize;
    if (draftV !== undefined && draftV !== vocabSize) throw new RuntimeError("draft-vocabulary-mismatch", `the draft model's logits cover ${draftV} token ids but the target's cover ${vocabSize}; a draft model must share the target's tokenizer and vocabulary`);
    const budget = options.budget ?? DYSPEC_BUDGET;
    if (!Number.isInteger(budget) || budget < 1) throw new RuntimeError("bad-speculation", `dyspec: budget must be a positive integer, got ${budget}`);
    const grow = options.grow ?? "dyspec";
    if (grow !== "dyspec" && grow !== "template") throw new RuntimeError("bad-speculation", `dyspec: grow must be "dyspec" or "template", got ${grow}`);
    return new DySpecDraft(sequence, options.model, vocabSize, budget, grow);
  }

  /** `token` is decided and is the last of `context`, not yet in the target's cache; returns the accepted drafts and the next token. */
  async step(token: number, context: readonly number[], limit: number): Promise<number[]> {
    const { maxPositions } = this.sequence.model;
    const room = maxPositions === undefined ? Infinity : maxPositions - this.sequence.length - 1;
    const budget = Math.min(this.budget, room);
    const t0 = performance.now();
    // Each node's successors as the draft gave them; the grown tree ranks them by observed acceptance.
    const fetched = new Map<number, Successors>();
    const successors = async (tree: GrownTree, node: number) => {
      const next = await this.successors(context, tree, node);
      fetched.set(node, next);
      return next;
    };
    const tree = this.grow === "dyspec" ? await growTree(token, budget, limit, async (t, n) => this.calibrated(await successors(t, n))) : await this.templateTree(token, budget, limit, successors);
    this.draftMs += performance.now() - t0;
    const [start, position] = [this.sequence.length, this.sequence.position];
    const t1 = performance.now();
    const output = await this.sequence.forwardIdsOrLogits(tree.tokens, 1, tree.parents);
    const greedy = tree.tokens.map((_, i) => this.argmaxOf(output, i));
    const path = longestAgreeingPath(tree.tokens, tree.parents, greedy);
    keepPath(this.sequence, start, position, path);
    this.learn(tree, fetched, path);
    this.tally.record(tree.tokens.length - 1, path.length - 1, performance.now() - t1);
    return [...path.slice(1).map((i) => tree.tokens[i]!), greedy[path[path.length - 1]!]!];
  }

  /** Successors reordered and valued by the acceptance observed at their draft probabilities. */
  private calibrated(next: Successors): Successors {
    const order = Array.from(next.ids, (_, r) => r).map((r) => ({ id: next.ids[r]!, value: this.calibration.rate(next.probs[r]!) }));
    order.sort((a, b) => b.value - a.value);
    return { ids: order.map((o) => o.id), probs: order.map((o) => o.value) };
  }

  /** Every verified node whose parent was accepted is one trial at its draft probability. */
  private learn(tree: GrownTree, fetched: ReadonlyMap<number, Successors>, path: readonly number[]): void {
    const onPath = new Set(path);
    for (let n = 1; n < tree.tokens.length; n++) {
      const parent = tree.parents[n]!;
      const next = fetched.get(parent);
      if (!onPath.has(parent) || !next) continue;
      const rank = Array.prototype.indexOf.call(next.ids, tree.tokens[n]!);
      if (rank >= 0) this.calibration.record(next.probs[rank]!, onPath.has(n));
    }
  }

  /** The static template's first `budget` nodes within `limit` levels, each its parent's successor of the node's rank. */
  private async templateTree(root: number, budget: number, limit: number, successors: (tree: GrownTree, node: number) => Promise<Successors>): Promise<GrownTree> {
    const template = paperTreeTemplate();
    const nodes = [0, ...template.draftsWithin(limit).slice(0, budget)];
    const tree: GrownTree = { tokens: [root], parents: [-1], depths: [0], values: [1] };
    const known = new Map<number, Successors>();
    for (const n of nodes.slice(1)) {
      const parent = nodes.indexOf(template.parents[n]!);
      let next = known.get(parent);
      if (!next) known.set(parent, (next = await successors(tree, parent)));
      tree.tokens.push(next.ids[template.ranks[n]!]!);
      tree.parents.push(parent);
      tree.depths.push(template.depths[n]!);
      tree.values.push(tree.values[parent]! * next.probs[template.ranks[n]!]!);
    }
    return tree;
  }

  /** The draft model's likeliest successors of `node` (its probabilities at temperature 1), from one call on the node's path. */
  private async successors(context: readonly number[], tree: GrownTree, node: number): Promise<Successors> {
    const path: number[] = [];
    for (let n = node; n > 0; n = tree.parents[n]!) path.unshift(tree.tokens[n]!);
    const want = [...context, ...path];
    let common = 0;
    while (common < this.held.length && common < want.length && this.held[common] === want[common]) common++;
    common = Math.min(common, want.length - 1); // at least one token is fed to get its row
    this.draft.truncate(common);
    const feed = want.slice(common);
    const logits = await this.draft.forward(feed);
    this.draftCalls++;
    this.held = want;
    const V = logits.dims[logits.dims.length - 1]!;
    readFloatRow(floatData(logits), (logits.dims[1]! - 1) * V, this.row);
    const ids = new Int32Array(Math.min(RECYCLE_TOP_K, V));
    topK(this.row, ids.length, ids);
    const probs = new Float32Array(ids.length);
    successorProbabilities(this.row, ids, probs);
    return { ids, probs };
  }

  /** The target's argmax at call row `i`, from its ids or its logits. */
  private argmaxOf(output: TopTokens | ort.Tensor, i: number): number {
    if ("ids" in output) return output.ids[i * output.k]!;
    const V = output.dims[output.dims.length - 1]!;
    if (V !== this.vocabSize) throw new RuntimeError("vocabulary-changed", `the target's logits cover ${V} token ids, not the ${this.vocabSize} its first call returned`);
    readFloatRow(floatData(output), i * V, this.row);
    return argmax(this.row);
  }

  stats(generatedTokens: number): SpeculativeStats {
    return this.tally.summary(this.name, this.draftMs, generatedTokens);
  }

  async release(): Promise<void> {}
}
