// Token Recycling (Luo et al., ACL 2025; algorithms.md §14): every target call's top-k
// candidates are recycled into an adjacency matrix Adj[token] = its k likeliest successors,
// kept across requests. A step fills a static token tree from it breadth-first (one lookup per
// node, parents first), verifies the whole tree in one target call with a tree attention mask,
// keeps the longest path the target's argmax agrees with (plus its own next token) and compacts
// the KV cache to that path. Lossless for greedy decoding: every kept token is the target's argmax.
//
// The paper's 80-node tree assumes a GPU, where 81 tokens cost one token's time. On a CPU a
// call's cost grows with its tokens, so the tree is cut to the subtree with the most expected
// tokens per millisecond, from call costs measured on this machine and each node's observed
// acceptance rate, re-chosen every step (no draft at all when plain decoding is faster). The
// guard every draft source shares (guard.ts) compares whole steps as they run, host work
// included, and stops drafting when tree steps cost more per token than plain ones. The matrix,
// the costs and what the policy learned are kept per model across requests. A model compiled with tree-attention-mask runs ordinary
// steps too (the runtime feeds a chain mask).
// Each request seeds the matrix from its prompt's rows (`seed`, the cold start), and a
// model with in-graph top-k outputs (logits-topk) hands over ids instead of [S, V] logits.
// Work that only drafting needs (a host top-k over a prompt's or a plain step's logits) waits
// until a step may draft: a request the guard keeps plain costs what plain decoding does.
import type * as ort from "onnxruntime-node";
import type { DecoderModel, DecoderSequence, TopTokens } from "../decoder.ts";
import { RuntimeError } from "../errors.ts";
import type { LogitsProcessor } from "../sampling/processors.ts";
import { argmax, type SamplingConfig } from "../sampling/sampler.ts";
import { floatData, readFloatRow, type FloatArray } from "../tensors.ts";
import { growTree, treePrefix, type GrownTree } from "./dyspec.ts";
import { PROBE_TOKENS, SpeculationGuard, type StepPlan } from "./guard.ts";
import { refuseTreeOnRecurrent } from "./recurrent-rollback.ts";
import type { SpeculativeStats } from "./stats.ts";
import { SpeculativeTally } from "./stats.ts";

/** One prefill call: the prompt tokens it ran and what it returned (logits, or in-graph top-k ids). */
export interface PromptStep {
  tokens: readonly number[];
  output: ort.Tensor | TopTokens;
}

/** Successors stored per token (the paper's output_id_topk). */
export const RECYCLE_TOP_K = 8;

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

/** Adj [V, k]: each token's k likeliest successors as last seen by the target; zeros at first, as in the paper. */
export class AdjacencyMatrix {
  readonly successors: Int32Array;
  /**
   * [V, k] the target's probability of each successor when it was recorded, for trees grown by
   * probability (DySpec): 0 for a row never seen, NaN for one recorded from ids alone (no logits).
   * Made on first use: the static template never reads it.
   */
  private probabilities?: Float32Array;

  constructor(
    readonly vocabSize: number,
    readonly k = RECYCLE_TOP_K,
  ) {
    this.successors = new Int32Array(vocabSize * k);
  }

  get probs(): Float32Array {
    return (this.probabilities ??= new Float32Array(this.vocabSize * this.k));
  }

  /** The probabilities if a grown tree ever recorded any (warm-state.ts persists only what exists). */
  get recordedProbs(): Float32Array | undefined {
    return this.probabilities;
  }

  get(token: number, rank: number): number {
    return this.successors[token * this.k + rank]!;
  }

  /** Adj[token] = the top k of `row` (logits over the vocabulary), likeliest first. */
  update(token: number, row: Float32Array): void {
    topK(row, this.k, this.successors.subarray(token * this.k, (token + 1) * this.k));
  }
}

/** Writes the ids of the `out.length` largest entries of `row` into `out`, largest first (ties: lower id). */
export function topK(row: Float32Array, k: number, out: Int32Array): void {
  const values = new Float32Array(k).fill(-Infinity);
  out.fill(0);
  let filled = 0;
  for (let id = 0; id < row.length; id++) {
    const v = row[id]!;
    if (filled === k && !(v > values[k - 1]!)) continue;
    let j = Math.min(filled, k - 1);
    while (j > 0 && v > values[j - 1]!) {
      values[j] = values[j - 1]!;
      out[j] = out[j - 1]!;
      j--;
    }
    values[j] = v;
    out[j] = id;
    if (filled < k) filled++;
  }
}

/** Milliseconds of one target call as a function of the tokens it verifies. */
export interface CallCost {
  callMs(tokens: number): number;
}

/**
 * The cost of a call measured at sizes 1 .. maxTokens on this machine and interpolated between
 * them. Not a line: on a CPU, attention over a large tree grows faster than linearly, and a line
 * fitted to every size misprices the small trees that pay. The fastest of a few runs counts (on
 * a shared machine other work only adds time); measured once per model.
 */
export class MeasuredCost implements CallCost {
  constructor(readonly samples: readonly { tokens: number; ms: number }[]) {}

  callMs(tokens: number): number {
    const s = this.samples;
    let i = 1;
    while (i < s.length - 1 && s[i]!.tokens < tokens) i++;
    const [a, b] = [s[i - 1]!, s[i]!];
    return a.ms + ((b.ms - a.ms) * (tokens - a.tokens)) / (b.tokens - a.tokens);
  }

  /** `topK`: the successors a step recycles (steps fetch only those ids when the graph offers them). */
  static async measure(sequence: DecoderSequence, token: number, maxTokens: number, topK = RECYCLE_TOP_K): Promise<MeasuredCost> {
    const start = sequence.length;
    // Beyond the positions left, the curve extends its last segment.
    const room = sequence.model.maxPositions === undefined ? maxTokens : sequence.model.maxPositions - start;
    maxTokens = Math.min(maxTokens, room);
    if (maxTokens < 2) throw new RangeError("measuring call costs needs room for two tokens");
    const sizes = [...new Set([1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96].filter((n) => n < maxTokens).concat(maxTokens))];
    // Timed as steps run: ids only when the graph offers the top-k the matrix stores.
    const call = (size: number) => sequence.forwardIdsOrLogits(Array(size).fill(token), topK);
    await call(maxTokens); // the first call at a new size allocates
    sequence.truncate(start);
    const samples = [];
    for (const size of sizes) {
      let fastest = Infinity;
      for (let r = 0; r < 3; r++) {
        const t0 = performance.now();
        await call(size);
        fastest = Math.min(fastest, performance.now() - t0);
        sequence.truncate(start);
      }
      samples.push({ tokens: size, ms: fastest });
    }
    return new MeasuredCost(samples);
  }
}

/** The parents of a step that verifies the root alone. */
const ROOT_ONLY: readonly number[] = [-1];

const costs = new WeakMap<DecoderModel, CallCost>();
const matrices = new WeakMap<DecoderModel, AdjacencyMatrix>();

/** What the policy learns about a model (per-node acceptance, whether trees pay); kept across requests like the matrix. */
export interface Learned {
  acceptance: NodeAcceptance;
  guard: SpeculationGuard;
}

const learnedForPaperTree = new WeakMap<DecoderModel, Learned>();
/** Grown trees have a guard of their own: whether they pay is a different question from whether the template does. */
const learnedForGrownTrees = new WeakMap<DecoderModel, Learned>();
/** The paper's tree, built once: every request uses it, and on a tiny model building it per request shows. */
let paperTemplate: TreeTemplate | undefined;

export function freshLearned(template: TreeTemplate): Learned {
  return { acceptance: new NodeAcceptance(template), guard: new SpeculationGuard() };
}

/** What Token Recycling has measured and learned for `model` in this process (warm-state.ts persists it). */
export function recyclingState(model: DecoderModel): { cost?: CallCost; matrix?: AdjacencyMatrix; template?: Learned; grown?: Learned } {
  return { cost: costs.get(model), matrix: matrices.get(model), template: learnedForPaperTree.get(model), grown: learnedForGrownTrees.get(model) };
}

/** Restores what `recyclingState` gave (from a warm-state file): the next request on `model` starts from it. */
export function restoreRecyclingState(model: DecoderModel, state: { cost?: CallCost; matrix?: AdjacencyMatrix; template?: Learned; grown?: Learned }): void {
  if (state.cost) costs.set(model, state.cost);
  if (state.matrix) matrices.set(model, state.matrix);
  if (state.template) learnedForPaperTree.set(model, state.template);
  if (state.grown) learnedForGrownTrees.set(model, state.grown);
}

/** The paper's template, shared by every request that uses it. */
export function paperTreeTemplate(): TreeTemplate {
  return (paperTemplate ??= new TreeTemplate(PAPER_TREE));
}

/** The model's adjacency matrix, made on first use and kept for every later request ("hot start"). */
export function adjacencyFor(model: DecoderModel, vocabSize: number, k = RECYCLE_TOP_K): AdjacencyMatrix {
  let matrix = matrices.get(model);
  if (!matrix || matrix.k !== k || matrix.vocabSize !== vocabSize) matrices.set(model, (matrix = new AdjacencyMatrix(vocabSize, k)));
  return matrix;
}

/** Per template node: how often it matched the target, given its parent was on the accepted path. */
export class NodeAcceptance {
  readonly hits: Float64Array;
  readonly trials: Float64Array;

  constructor(template: TreeTemplate) {
    // Prior: a likelier successor (lower rank) is likelier to be right; two pseudo-trials.
    this.hits = Float64Array.from(template.ranks, (r, i) => (i === 0 ? 2 : 1 / (r + 1)));
    this.trials = new Float64Array(template.size).fill(2);
  }

  rate(node: number): number {
    return this.hits[node]! / this.trials[node]!;
  }

  record(node: number, accepted: boolean): void {
    this.trials[node]! += 1;
    if (accepted) this.hits[node]! += 1;
  }
}

export interface RecycleOptions {
  /** Draft nodes verified per call: a number caps the template (BFS order); "auto" lets the cost model choose every step. */
  tree?: number | "auto";
  /** Successors stored per token (default 8). */
  topK?: number;
  /** The tree template as child-rank paths (default: the paper's 80-node tree). */
  template?: readonly (readonly number[])[];
  /** What a target call costs; measured on this machine at the first step when absent. */
  cost?: CallCost;
  /**
   * How the tree is shaped: "template" fills the static template (the paper's); "dyspec" grows it
   * by the recorded successor probabilities (dyspec.ts), `tree` nodes at most ("auto": the most
   * expected tokens per millisecond of the template's size at most).
   */
  grow?: "template" | "dyspec";
}

/** `speculate: { kind: "recycle" }` in the generator's options. */
export interface RecycleSpeculation extends RecycleOptions {
  kind: "recycle";
}

export class TokenRecycling {
  readonly name = "recycle";
  private readonly tally = new SpeculativeTally();
  private readonly template: TreeTemplate;
  private readonly learned: Learned;
  private readonly matrix: AdjacencyMatrix;
  private readonly row: Float32Array;
  private cost?: CallCost;
  private draftMs = 0;
  /** What the guard planned for the current step; absent for a fixed tree size. */
  private plan?: StepPlan;
  /**
   * Prompt calls that returned logits, recycled when a step may first draft: their top-k is
   * host work (a tenth of a millisecond per 20 rows of a 512-token vocabulary), which a
   * request whose steps never draft need not pay. Ids are recycled at once: copying them costs nothing.
   */
  private unseeded: { tokens: readonly number[]; logits: ort.Tensor }[] = [];

  constructor(
    private readonly sequence: DecoderSequence,
    private readonly vocabSize: number,
    private readonly options: RecycleOptions = {},
  ) {
    const { contract } = sequence.model;
    if (!contract.hasTreeMask) throw new RuntimeError("no-tree-attention", "Token Recycling verifies a token tree in one call: compile the target with the tree-attention-mask pass");
    const tree = options.tree ?? "auto";
    if (tree !== "auto" && !(Number.isInteger(tree) && tree >= 0)) throw new RuntimeError("bad-speculation", `recycle: tree must be a non-negative integer or "auto", got ${tree}`);
    this.template = options.template ? new TreeTemplate(options.template) : paperTreeTemplate();
    if (options.grow !== undefined && options.grow !== "template" && options.grow !== "dyspec") throw new RuntimeError("bad-speculation", `recycle: grow must be "template" or "dyspec", got ${options.grow}`);
    if (options.template) this.learned = freshLearned(this.template);
    else {
      const kept = options.grow === "dyspec" ? learnedForGrownTrees : learnedForPaperTree;
      this.learned = kept.get(sequence.model) ?? freshLearned(this.template);
      kept.set(sequence.model, this.learned);
    }
    this.matrix = adjacencyFor(sequence.model, vocabSize, options.topK ?? RECYCLE_TOP_K);
    if (Math.max(...this.template.ranks) >= this.matrix.k) throw new RuntimeError("bad-speculation", `recycle: the tree uses successor rank ${Math.max(...this.template.ranks)} but only ${this.matrix.k} are stored`);
    this.row = new Float32Array(vocabSize);
    this.cost = options.cost;
  }

  /**
   * For the generator: Token Recycling verifies against the target's argmax, so it needs greedy
   * decoding without logits processors (the paper's setting).
   */
  static create(sequence: DecoderSequence, vocabSize: number, options: RecycleOptions, sampling: SamplingConfig = {}, processors: readonly LogitsProcessor[] = []): TokenRecycling {
    const warped = sampling.temperature || (sampling.repetitionPenalty !== undefined && sampling.repetitionPenalty !== 1) || processors.length > 0;
    if (warped) throw new RuntimeError("bad-speculation", "recycle verifies against the target's argmax: it needs greedy decoding without a repetition penalty or logits processors");
    refuseTreeOnRecurrent(sequence.model);
    return new TokenRecycling(sequence, vocabSize, options);
  }

  /**
   * `token` is decided and is the last of `context`, but not yet in the target's cache. Verifies
   * a tree of at most `limit` draft levels under it; returns the accepted drafts and the next token.
   */
  async step(token: number, _context: readonly number[], limit: number): Promise<number[]> {
    await this.measureCost(token);
    const t0 = performance.now();
    const nodes = this.chooseNodes(limit);
    if (this.plan !== "plain") this.recyclePrompt();
    if (nodes.length === 1) return [await this.rootStep(token, t0)];
    const grown = this.options.grow === "dyspec" ? await this.grow(token, this.growBudget(nodes.length - 1), limit) : undefined;
    if (grown?.tokens.length === 1) return [await this.rootStep(token, t0)];
    const ids = grown?.tokens ?? this.fill(token, nodes);
    this.draftMs += performance.now() - t0;

    const [start, position] = [this.sequence.length, this.sequence.position];
    const parents = grown?.parents ?? nodes.map((n) => nodes.indexOf(this.template.parents[n]!));
    const t1 = performance.now();
    const output = await this.sequence.forwardIdsOrLogits(ids, this.matrix.k, parents);
    const greedy = "ids" in output ? this.recycleIds(output, ids) : this.recycle(output, ids);
    const path = longestAgreeingPath(ids, parents, greedy);
    keepPath(this.sequence, start, position, path);
    this.tally.record(nodes.length - 1, path.length - 1, performance.now() - t1);
    if (this.plan) this.tally.decided(this.plan, this.learned.guard.record(this.plan, true, performance.now() - t0, path.length));
    if (!grown) this.learn(nodes, parents, path);
    return [...path.slice(1).map((i) => ids[i]!), greedy[path[path.length - 1]!]!];
  }

  /**
   * No draft: the root alone, with no tree bookkeeping. Its successors go into the matrix when
   * the graph hands them over, or when the step could have drafted; a step the guard made plain
   * takes the argmax of its logits, as plain decoding does, since a host top-k would cost a tiny
   * model's plain steps several percent while drafting does not pay.
   */
  private async rootStep(token: number, t0: number): Promise<number> {
    const t1 = performance.now();
    const output = await this.sequence.forwardIdsOrLogits([token], this.matrix.k, ROOT_ONLY);
    const next = "ids" in output ? this.recycleIds(output, [token])[0]! : this.plan === "plain" ? this.argmaxOf(output) : this.recycle(output, [token])[0]!;
    const t2 = performance.now();
    this.tally.record(0, 0, t2 - t1);
    if (this.plan) this.tally.decided("plain", this.learned.guard.record(this.plan, false, t2 - t0, 1));
    return next;
  }

  stats(generatedTokens: number): SpeculativeStats {
    return this.tally.summary(this.name, this.draftMs, generatedTokens);
  }

  /**
   * Cold start (the paper's unofficial implementation; algorithms.md §14): every prompt
   * position's top-k become its token's successors, so the first drafts already have them.
   * Only calls that returned every position count; later positions overwrite earlier ones.
   * Logits wait for the first step that may draft (`unseeded`).
   */
  seed(prompt: readonly PromptStep[]): void {
    for (const { tokens, output } of prompt) {
      if ("ids" in output) {
        if (output.rows === tokens.length && output.k >= this.matrix.k) this.recycleIds(output, tokens);
      } else if (output.dims[1] === tokens.length) this.unseeded.push({ tokens, logits: output });
    }
  }

  /** The prompt's logits into the matrix, once, before its successors are first drafted. */
  private recyclePrompt(): void {
    for (const { tokens, logits } of this.unseeded) this.recycle(logits, tokens);
    this.unseeded = [];
  }

  async release(): Promise<void> {}

  /** Draft tokens that still fit before the model's last position. */
  private room(): number {
    const { maxPositions } = this.sequence.model;
    return maxPositions === undefined ? Infinity : maxPositions - this.sequence.length - 1;
  }

  /** The "auto" tree's call costs, measured once per model before a step's clock starts: the guard compares steps, not start-up costs. */
  private async measureCost(token: number): Promise<void> {
    if (this.cost || (this.options.tree ?? "auto") !== "auto" || this.room() < 1) return;
    this.cost = costs.get(this.sequence.model) ?? (await MeasuredCost.measure(this.sequence, token, this.template.size, this.matrix.k));
    costs.set(this.sequence.model, this.cost);
  }

  /** Template nodes to verify: the root, then drafts in template order (parents before children). */
  private chooseNodes(limit: number): number[] {
    const room = this.room();
    this.plan = undefined;
    if (room < 1) return [0];
    const tree = this.options.tree ?? "auto";
    let drafts: number[];
    if (tree !== "auto") drafts = this.template.draftsWithin(limit).slice(0, tree);
    else {
      // The guard decides whether a tree is verified (from whole steps, host work included),
      // the cost curve how large: at least the rank-0 chain a probe verifies, since the guard
      // measured that trees pay. A plain step does no planning: on a tiny model it would show.
      this.plan = this.learned.guard.plan();
      if (this.plan === "plain") return [0];
      const chain = this.template.firstChildChain.slice(0, Math.min(PROBE_TOKENS, limit));
      drafts = this.plan === "probe" ? chain : this.bestSubtree(this.template.draftsWithin(limit), this.cost!);
      if (drafts.length < chain.length) drafts = chain;
    }
    // Template order puts parents first, so a prefix is still a tree.
    return [0, ...drafts.slice(0, room)];
  }

  /**
   * The subtree with the most expected tokens per millisecond. A node adds the chance that its
   * whole path is accepted (the product of its ancestors' rates); that never exceeds its
   * parent's, so the best m-node subtree is the m nodes of highest chance.
   */
  private bestSubtree(eligible: readonly number[], cost: CallCost): number[] {
    const chance = new Float64Array(this.template.size);
    chance[0] = 1;
    for (let n = 1; n < this.template.size; n++) chance[n] = chance[this.template.parents[n]!]! * this.learned.acceptance.rate(n);
    const ranked = eligible.slice().sort((a, b) => chance[b]! - chance[a]! || a - b);
    let best = 0;
    let bestRate = 1 / cost.callMs(1);
    let expected = 1;
    ranked.forEach((n, i) => {
      expected += chance[n]!;
      const rate = expected / cost.callMs(i + 2);
      if (rate > bestRate) [best, bestRate] = [i + 1, rate];
    });
    return ranked.slice(0, best).sort((a, b) => a - b);
  }

  /** Nodes a grown tree may have: a fixed tree's size, a probe's, or on a drafting step the template's (cut by cost afterwards). */
  private growBudget(templateNodes: number): number {
    const tree = this.options.tree ?? "auto";
    if (tree !== "auto") return Math.min(tree, this.room());
    return this.plan === "draft" ? Math.min(this.template.size - 1, this.room()) : templateNodes;
  }

  /**
   * DySpec: the tree grown by recorded successor probabilities, at most `budget` nodes and
   * `limit` levels; under "auto" (a drafting step) cut to the prefix with the most expected
   * tokens per millisecond, the nodes' values being their paths' chances.
   */
  private async grow(root: number, budget: number, limit: number): Promise<GrownTree> {
    const k = this.matrix.k;
    const ids = this.matrix.successors;
    const probs = this.matrix.probs;
    const tree = await growTree(root, budget, limit, (t, node) => {
      const token = t.tokens[node]!;
      const row = probs.subarray(token * k, (token + 1) * k);
      // A row recorded from ids alone has no probabilities: its ranks' prior stands in (the template's, 1/(r+1) halved).
      return { ids: ids.subarray(token * k, (token + 1) * k), probs: Number.isNaN(row[0]!) ? row.map((_, r) => 0.5 / (r + 1)) : row };
    });
    if (this.plan !== "draft" || !this.cost) return tree;
    let [best, bestRate, expected] = [0, 1 / this.cost.callMs(1), 1];
    for (let n = 1; n < tree.tokens.length; n++) {
      expected += tree.values[n]!;
      const rate = expected / this.cost.callMs(n + 1);
      if (rate > bestRate) [best, bestRate] = [n, rate];
    }
    return treePrefix(tree, Math.max(best, Math.min(PROBE_TOKENS, tree.tokens.length - 1)));
  }

  /** Breadth-first fill: each node is its parent token's successor of the node's rank. */
  private fill(root: number, nodes: readonly number[]): number[] {
    const token = new Map<number, number>([[0, root]]);
    for (const n of nodes.slice(1)) token.set(n, this.matrix.get(token.get(this.template.parents[n]!)!, this.template.ranks[n]!));
    return nodes.map((n) => token.get(n)!);
  }

  /** The target's argmax per tree position; every position's top-k goes back into the matrix. */
  private recycle(logits: ort.Tensor, ids: readonly number[]): number[] {
    const [data, V] = this.rows(logits);
    const k = this.matrix.k;
    const successors = new Int32Array(k);
    return ids.map((id, i) => {
      readFloatRow(data, i * V, this.row);
      topK(this.row, k, successors);
      this.matrix.successors.set(successors, id * k);
      if (this.options.grow === "dyspec") successorProbabilities(this.row, successors, this.matrix.probs.subarray(id * k, (id + 1) * k));
      return successors[0]!;
    });
  }

  /** The target's argmax of one row of logits, recycling nothing. */
  private argmaxOf(logits: ort.Tensor): number {
    readFloatRow(this.rows(logits)[0], 0, this.row);
    return argmax(this.row);
  }

  /** The data of [1, S, V] logits and V, which must be the vocabulary the matrix covers. */
  private rows(logits: ort.Tensor): [FloatArray, number] {
    const V = logits.dims[logits.dims.length - 1]!;
    if (V !== this.vocabSize) throw new RuntimeError("draft-vocabulary-mismatch", `the target's logits cover ${V} token ids, expected ${this.vocabSize}`);
    return [floatData(logits), V];
  }

  /** As `recycle`, from the graph's own top-k ids (likeliest first, as topK orders them). */
  private recycleIds(top: TopTokens, ids: readonly number[]): number[] {
    const k = this.matrix.k;
    return ids.map((id, i) => {
      this.matrix.successors.set(top.ids.subarray(i * top.k, i * top.k + k), id * k);
      if (this.options.grow === "dyspec") this.matrix.probs.fill(NaN, id * k, (id + 1) * k);
      return top.ids[i * top.k]!;
    });
  }

  /** Every verified node whose parent was accepted is one trial of its template position. */
  private learn(nodes: readonly number[], parents: readonly number[], path: readonly number[]): void {
    const onPath = new Set(path);
    nodes.forEach((n, i) => {
      if (i > 0 && onPath.has(parents[i]!)) this.learned.acceptance.record(n, onPath.has(i));
    });
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

/** The softmax probability of each of `ids` in the logits `row` (written into `out`). */
export function successorProbabilities(row: Float32Array, ids: Int32Array, out: Float32Array): void {
  const max = row[ids[0]!]!;
  let total = 0;
  for (let v = 0; v < row.length; v++) total += Math.exp(row[v]! - max);
  for (let r = 0; r < ids.length; r++) out[r] = Math.exp(row[ids[r]!]! - max) / total;
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
