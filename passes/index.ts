import { PassRegistry } from "../compiler/pass-manager/registry.ts";
import { createLiftAttention, createLowerAttention } from "./attention/index.ts";
import { createCse } from "./cse.ts";
import { createDce } from "./dce.ts";
import { createKvAppendOnly } from "./kv-append-only.ts";
import { createToposort } from "./toposort.ts";

/**
 * Every pass the command line and .pipe files can name. Add a pass here with its options; the
 * manager validates and converts the options a pipeline gives before calling `create`.
 */
export function defaultRegistry(): PassRegistry {
  return new PassRegistry()
    .register({ name: "toposort", create: createToposort })
    .register({ name: "dce", create: createDce })
    .register({ name: "cse", create: createCse })
    .register({
      name: "lift-attention",
      options: { trace: { type: "boolean", description: "note why a rule that lifted nothing did not match", default: false } },
      create: createLiftAttention,
    })
    .register({ name: "lower-attention", create: createLowerAttention })
    .register({ name: "kv-append-only", create: createKvAppendOnly });
}
