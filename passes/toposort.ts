import type { Model } from "../compiler/ir/model.ts";
import { toposortModel } from "../compiler/ir/toposort.ts";
import type { Pass, PassResult } from "../compiler/pass-manager/pass.ts";
import { TOPOLOGICALLY_SORTED } from "../compiler/pass-manager/properties.ts";

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
