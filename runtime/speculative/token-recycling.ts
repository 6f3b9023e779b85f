// Token Recycling (Luo et al., ACL 2025): every target call's top-k
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
import type { DecoderSequence, TopTokens } from "../decoder.ts";
import { RuntimeError } from "../errors.ts";
import type { LogitsProcessor } from "../sampling/processors.ts";
import { argmax, type SamplingConfig } from "../sampling/sampler.ts";
import { floatData, readFloatRow, type FloatArray } from "../tensors.ts";
import { growTree, treePrefix, type GrownTree } from "./dyspec.ts";
import { PROBE_TOKENS, type StepPlan } from "./guard.ts";
import { refuseTreeOnRecurrent } from "./recurrent-rollback.ts";
import type { SpeculativeStats } from "./stats.ts";
import { SpeculativeTally } from "./stats.ts";
import { AdjacencyMatrix, RECYCLE_TOP_K, successorProbabilities, topK } from "./adjacency-matrix.ts";
import { MeasuredCost, type CallCost } from "./cost-model.ts";
import { adjacencyFor, callCostFor, freshLearned, learnedFor, paperTreeTemplate, type Learned } from "./recycling-state.ts";
import { keepPath, longestAgreeingPath, TreeTemplate } from "./token-tree.ts";

/** One prefill call: the prompt tokens it ran and what it returned (logits, or in-graph top-k ids). */
export interface PromptStep {
  tokens: readonly number[];
  output: ort.Tensor | TopTokens;
}

/** The parents of a step that verifies the root alone. */
const ROOT_ONLY: readonly number[] = [-1];


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
  /** The stats' source: trees grown by probability report as DySpec's. */
  readonly name: string;
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
   * host work, which a request whose steps never draft need not pay. Ids are recycled at once: copying them costs nothing.
   */
  private unseeded: { tokens: readonly number[]; logits: ort.Tensor }[] = [];

  constructor(
    private readonly sequence: DecoderSequence,
    private readonly vocabSize: number,
    private readonly options: RecycleOptions = {},
  ) {
    this.name = options.grow === "dyspec" ? "dyspec on recycle" : "recycle";
    const { contract } = sequence.model;
    if (!contract.hasTreeMask) throw new RuntimeError("no-tree-attention", "Token Recycling verifies a token tree in one call: compile the target with the tree-attention-mask pass");
    const tree = options.tree ?? "auto";
    if (tree !== "auto" && !(Number.isInteger(tree) && tree >= 0)) throw new RuntimeError("bad-speculation", `recycle: tree must be a non-negative integer or "auto", got ${tree}`);
    this.template = options.template ? new TreeTemplate(options.template) : paperTreeTemplate();
    if (options.grow !== undefined && options.grow !== "template" && options.grow !== "dyspec") throw new RuntimeError("bad-speculation", `recycle: grow must be "template" or "dyspec", got ${options.grow}`);
    this.learned = options.template ? freshLearned(this.template) : learnedFor(sequence.model, options.grow === "dyspec", this.template);
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
   * Cold start (the paper's unofficial implementation): every prompt
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
    const t0 = performance.now();
    let measured = false;
    this.cost = await callCostFor(this.sequence.model, () => {
      measured = true;
      return MeasuredCost.measure(this.sequence, token, this.template.size, this.matrix.k);
    });
    if (measured) this.tally.measureMs += performance.now() - t0;
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
