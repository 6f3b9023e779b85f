// What Token Recycling keeps per model across requests (the paper's "hot start"): the
// adjacency matrix, the call costs, and what the step policy learned. warm-state.ts persists it.
import type { DecoderModel } from "../decoder.ts";
import { AdjacencyMatrix, RECYCLE_TOP_K } from "./adjacency-matrix.ts";
import type { CallCost } from "./cost-model.ts";
import { SpeculationGuard } from "./guard.ts";
import { PAPER_TREE, TreeTemplate } from "./token-tree.ts";

/** Each model's call costs, measured by the first request whose tree is "auto". */
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

/** What the policy has learned for `model` with `grown` trees (DySpec) or trees cut from the paper's template; made on first use. */
export function learnedFor(model: DecoderModel, grown: boolean, template: TreeTemplate): Learned {
  const kept = grown ? learnedForGrownTrees : learnedForPaperTree;
  const learned = kept.get(model) ?? freshLearned(template);
  kept.set(model, learned);
  return learned;
}

/** `model`'s call costs, measured by `measure` the first time they are asked for. */
export async function callCostFor(model: DecoderModel, measure: () => Promise<CallCost>): Promise<CallCost> {
  const cost = costs.get(model) ?? (await measure());
  costs.set(model, cost);
  return cost;
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
