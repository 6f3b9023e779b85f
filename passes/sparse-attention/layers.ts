import type { Model } from "../../compiler/ir/model.ts";
import type { Node } from "../../compiler/ir/node.ts";
import { isCanonical } from "../attention/canonical-node.ts";
import { isSparse } from "./site.ts";

/** The main graph's canonical attention nodes not yet made sparse, in graph order. */
export function denseCanonicalNodes(model: Model): Node[] {
  return model.graph.nodeArray().filter((n) => isCanonical(n) && !isSparse(n));
}
