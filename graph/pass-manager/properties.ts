import { isTopologicallySorted } from "../ir/toposort.ts";
import type { Model } from "../ir/model.ts";
import { verifyModel } from "../ir/verifier.ts";

/** Every node follows the producers of the values it reads (subgraphs and function bodies included). */
export const TOPOLOGICALLY_SORTED = "topologically-sorted";
/** The verifier finds nothing wrong. */
export const VERIFIED = "verified";

/**
 * Properties the manager can check on a model directly, for a pass that requires one no earlier
 * pass guaranteed. A property without a checker must be guaranteed by an earlier pass.
 */
export const PROPERTY_CHECKS: Readonly<Record<string, (model: Model) => boolean>> = {
  [TOPOLOGICALLY_SORTED]: (model) => [model.graph, ...model.functions.map((f) => f.body)].every(isTopologicallySorted),
  [VERIFIED]: (model) => verifyModel(model).length === 0,
};
