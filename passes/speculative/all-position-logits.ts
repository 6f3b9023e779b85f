import type { Graph } from "../../graph/ir/graph.ts";
import type { Model } from "../../graph/ir/model.ts";
import type { Node } from "../../graph/ir/node.ts";
import { tensorType } from "../../graph/ir/types.ts";
import type { Value } from "../../graph/ir/value.ts";
import type { Pass, PassResult } from "../../graph/pass-manager/pass.ts";
import { constantInts } from "../../graph/rewrite/index.ts";
import { LOGITS } from "../../runtime/contract-names.ts";

/**
 * Ops between the last-position pick and the logits through which picking a position commutes:
 * each output row depends only on the same row of its inputs (norms, the LM head's MatMul,
 * soft-capping, casts), given that the other operands are weights without a position axis.
 */
const ROW_WISE = new Set([
  "MatMul", "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Reciprocal", "Tanh", "Sigmoid", "Cast", "Neg",
  "LayerNormalization", "SimplifiedLayerNormalization", "RMSNormalization", "ReduceMean", "ReduceSum",
]);

/**
 * Speculative verification scores every drafted token, so it needs logits for all positions.
 * Some exporters keep only the last row: a Gather or Slice of position -1 on the hidden states
 * before the final norm or LM head. This pass removes that pick, so `logits` becomes [B, S, V]
 * and its last row is what the model returned before.
 */
export function createAllPositionLogits(): Pass {
  return {
    name: "all-position-logits",
    description: "return logits for every position when the model picks only the last one before the LM head",
    run(model: Model): PassResult {
      const logits = model.graph.outputs.find((v) => v.name === LOGITS);
      const pick = logits ? findLastPositionPick(model.graph, logits) : undefined;
      if (!logits || !pick) return { changed: false, stats: { "picks-removed": 0 } };
      const hidden = pick.input(0)!;
      pick.output(0).replaceAllUsesWith(hidden);
      model.graph.remove(pick);
      const type = logits.type;
      if (type?.kind === "tensor" && type.shape) {
        const [B, , V] = type.shape.length === 3 ? type.shape : [type.shape[0], undefined, type.shape[type.shape.length - 1]];
        logits.type = tensorType(type.dtype, [B, "sequence_length", V]);
      }
      clearIntermediateShapes(model.graph, hidden, logits);
      return { changed: true, stats: { "picks-removed": 1 } };
    },
  };
}

/**
 * The Gather/Slice that keeps only the last position of a [B, S, ...] tensor, when everything
 * between it and `logits` is row-wise; undefined when the model already returns every position.
 */
export function findLastPositionPick(graph: Graph, logits: Value): Node | undefined {
  const seen = new Set<Node>();
  const work = [logits.producer];
  while (work.length) {
    const node = work.pop();
    if (!node || node.graph !== graph || seen.has(node)) continue;
    seen.add(node);
    if (isLastPositionPick(node)) return node;
    if (!ROW_WISE.has(node.op) || !reducesOnlyLastAxis(node)) return undefined;
    for (const input of node.inputs) if (input && readsGraphInputs(input, graph)) work.push(input.producer);
  }
  return undefined;
}

/** Gather(x, -1 | [-1], axis=1) or Slice(x, starts=[-1], ends=[>= max], axes=[1]) on a [B, S, E] tensor. */
function isLastPositionPick(node: Node): boolean {
  const rank = rankOf(node.input(0));
  const onSequenceAxis = (axis: number | undefined) => axis === 1 || (rank === 3 && axis === -2);
  if (node.op === "Gather") {
    const index = constantInts(node.input(1));
    return onSequenceAxis(node.attrInt("axis", 0)) && index?.length === 1 && index[0] === -1;
  }
  if (node.op === "Slice") {
    const [starts, ends, axes, steps] = [1, 2, 3, 4].map((i) => constantInts(node.input(i)));
    return starts?.length === 1 && starts[0] === -1 && ends !== undefined && ends[0] >= 2 ** 31 - 1 && axes !== undefined && onSequenceAxis(axes[0]) && (steps === undefined || steps[0] === 1);
  }
  return false;
}

function reducesOnlyLastAxis(node: Node): boolean {
  if (!node.op.startsWith("Reduce")) return true;
  const axes = node.attrInts("axes") ?? constantInts(node.input(1));
  const rank = rankOf(node.input(0));
  return axes?.length === 1 && (axes[0] === -1 || (rank !== undefined && axes[0] === rank - 1));
}

/** Weights (and what is computed from weights alone, e.g. a transposed tied embedding) broadcast over positions; activations carry them. */
function readsGraphInputs(v: Value, graph: Graph, memo = new Map<Value, boolean>()): boolean {
  if (v.isGraphInput) return true;
  const producer = v.producer;
  if (!producer || producer.graph !== graph) return false;
  let known = memo.get(v);
  if (known === undefined) {
    memo.set(v, false);
    known = producer.inputs.some((input) => input !== undefined && readsGraphInputs(input, graph, memo));
    memo.set(v, known);
  }
  return known;
}

function rankOf(v: Value | undefined): number | undefined {
  return v?.type?.kind === "tensor" ? v.type.shape?.length : undefined;
}

/** Values between the pick and the logits had a length-1 (or absent) position axis; their declared shapes are stale now. */
function clearIntermediateShapes(graph: Graph, from: Value, logits: Value): void {
  const work = [...from.consumers()];
  const seen = new Set<Node>();
  while (work.length) {
    const node = work.pop()!;
    if (seen.has(node)) continue;
    seen.add(node);
    for (const out of node.outputs) {
      if (!out || out.isGraphOutput) continue;
      graph.valueInfo.delete(out);
      out.type = undefined;
      work.push(...out.consumers());
    }
  }
}
