import type { Model } from "../../graph/ir/model.ts";
import type { Node } from "../../graph/ir/node.ts";
import { inferShapes } from "../../graph/ir/shape-inference/index.ts";
import { isCanonical } from "../attention/canonical-node.ts";
import { isSparse } from "./site.ts";

/**
 * The main graph's canonical attention nodes not yet made sparse, in graph order. Types are
 * inferred first: the selection subgraphs widen float16 operands to float32.
 */
export function denseCanonicalNodes(model: Model): Node[] {
  inferShapes(model);
  return model.graph.nodeArray().filter((n) => isCanonical(n) && !isSparse(n));
}

/** Why a sparse pass changed nothing though attention was lifted: the reason compile reports at the request. */
export const NO_ATTENTION_LEFT = "no dense attention layer is left to rewrite (none was lifted to canonical form, or an earlier rewrite took them all)";
