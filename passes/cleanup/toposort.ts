import type { Model } from "../../graph/ir/model.ts";
import { toposortModel } from "../../graph/ir/toposort.ts";
import type { Pass, PassResult } from "../../graph/pass-manager/pass.ts";
import { TOPOLOGICALLY_SORTED } from "../../graph/pass-manager/properties.ts";

/** Puts every graph in topological order, moving as few nodes as possible; a cycle is an error naming its nodes. */
export function createToposort(): Pass {
  return {
    name: "toposort",
    description: "order nodes so each follows the producers of its inputs (stable; reports cycles)",
    guarantees: [TOPOLOGICALLY_SORTED],
    run(model: Model): PassResult {
      return { changed: toposortModel(model) };
    },
  };
}
