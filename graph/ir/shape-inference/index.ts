import type { Graph } from "../graph.ts";
import { Model } from "../model.ts";
import type { Node } from "../node.ts";
import { attentionRules } from "./attention.ts";
import { concatSplitSliceRules } from "./concat-split-slice.ts";
import { InferenceState, NodeContext, type InferenceReport, type ShapeRule } from "./context.ts";
import { controlFlowRules } from "./control-flow.ts";
import { convolutionRules } from "./convolution.ts";
import { elementwiseRules } from "./elementwise.ts";
import { gatherRules } from "./gather.ts";
import { matmulRules } from "./matmul.ts";
import { mergeInferredType } from "./merge.ts";
import { normalizationRules } from "./normalization.ts";
import { reduceRules } from "./reduce.ts";
import { reshapeRules } from "./reshape.ts";
import { shapeValueRules } from "./shape-values.ts";

/**
 * Shape and dtype inference with symbolic dims. One pass over the graph in node order fills in
 * each node output's type from its inputs (rules per op family, registered below), tracking the
 * contents of small int64 tensors so exported Shape -> Gather -> Concat -> Reshape chains resolve.
 */

export type { DimEquality, InferenceReport, InferenceWarning, RuleTable, ShapeRule } from "./context.ts";
export { NodeContext } from "./context.ts";
export { broadcastShapes } from "./dims.ts";
export { matmulShape } from "./matmul.ts";

export interface InferenceOptions {
  /** Operator set versions when inferring a bare Graph (default: the default domain at 21). */
  opsets?: ReadonlyMap<string, number>;
}

const RULES = new Map<string, ShapeRule>(
  Object.entries({
    ...elementwiseRules,
    ...matmulRules,
    ...reshapeRules,
    ...concatSplitSliceRules,
    ...gatherRules,
    ...shapeValueRules,
    ...reduceRules,
    ...normalizationRules,
    ...attentionRules,
    ...convolutionRules,
    ...controlFlowRules,
  }),
);

/** The rule for a node, if any: keyed by op in the default domain, `domain::op` elsewhere. */
export function shapeRuleFor(node: Node): ShapeRule | undefined {
  const domain = node.domain === "ai.onnx" ? "" : node.domain;
  return RULES.get(domain ? `${domain}::${node.op}` : node.op);
}

/** Infers types in place; never throws on unsupported ops or contradictions (see the report). */
export function inferShapes(target: Model | Graph, opts: InferenceOptions = {}): InferenceReport {
  const opsets = target instanceof Model ? target.opsets : (opts.opsets ?? new Map([["", 21]]));
  const state = new InferenceState(opsets);
  inferGraph(target instanceof Model ? target.graph : target, state);
  return state.report;
}

function inferGraph(graph: Graph, state: InferenceState): void {
  const { report } = state;
  for (const node of graph.nodes()) {
    // Subgraphs first: control-flow rules read their branches' outputs.
    for (const g of node.subgraphs()) inferGraph(g, state);
    const rule = shapeRuleFor(node);
    if (!rule) {
      report.unknownOps.set(node.qualifiedOp, (report.unknownOps.get(node.qualifiedOp) ?? 0) + 1);
      continue;
    }
    const ctx = new NodeContext(node, state);
    try {
      rule(ctx);
    } catch (e) {
      // A malformed node (say, an attribute of the wrong kind) must not stop inference of the rest.
      report.warnings.push({ value: "", node: node.describe(), message: `inference failed: ${(e as Error).message}` });
      continue;
    }
    ctx.outputs.forEach((type, i) => {
      const out = node.outputs[i];
      if (type && out && mergeInferredType(out, type, node.describe(), report)) report.inferred++;
    });
  }
}
