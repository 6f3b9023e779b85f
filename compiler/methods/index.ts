import type { MethodUse } from "../../dsl/method.ts";
import type { MethodTable, SlotSpec } from "../../dsl/schema.ts";
import { DENSE_ATTENTION, FULL_CACHE, GREEDY, NO_PRUNING, NO_SPECULATION } from "./baselines.ts";
import { DIVPRUNE } from "./divprune.ts";
import { DRAFT } from "./draft.ts";
import { DYSPEC } from "./dyspec.ts";
import { GLOBALCOM2 } from "./globalcom2.ts";
import { LOOKUP } from "./lookup.ts";
import type { MethodDefinition, Slot } from "./method.ts";
import { RECYCLE } from "./recycle.ts";
import { SAMPLE } from "./sample.ts";
import { SELF } from "./self.ts";
import { SPECTR } from "./spectr.ts";
import { STREAMING } from "./streaming.ts";
import { TIDAL } from "./tidal.ts";
import { TODRE } from "./todre.ts";
import { TOKENSELECT } from "./tokenselect.ts";
import { WINDOW } from "./window.ts";

/** The method slots of a stage: what each is for and the method a stage gets without it. */
const SLOTS: Readonly<Record<Slot, { doc: string; default: string }>> = {
  kv: { doc: "KV-cache policy", default: "full" },
  attention: { doc: "sparse attention method", default: "dense" },
  speculate: { doc: "speculative decoding", default: "none" },
  sampling: { doc: "how the next token is chosen", default: "greedy" },
  prune: { doc: "visual token pruning (vision stages)", default: "none" },
};

/**
 * Every method a .pipe can request, one file each, in the order the language reference lists
 * them. The checker, the lowering, the driver's runtime settings, `pipec passes` and
 * docs/language.md all read this list: adding a method is adding its file and its line here.
 */
export const METHODS: readonly MethodDefinition[] = [
  FULL_CACHE,
  STREAMING,
  WINDOW,
  DENSE_ATTENTION,
  TIDAL,
  TOKENSELECT,
  NO_SPECULATION,
  LOOKUP,
  DRAFT,
  SELF,
  RECYCLE,
  DYSPEC,
  SPECTR,
  GREEDY,
  SAMPLE,
  NO_PRUNING,
  DIVPRUNE,
  GLOBALCOM2,
  TODRE,
];

/** The methods as the language sees them, by slot: what dsl/'s checker takes. */
export const METHOD_TABLE: MethodTable = Object.fromEntries(
  (Object.entries(SLOTS) as [Slot, { doc: string; default: string }][]).map(([slot, s]): [string, SlotSpec] => [slot, { ...s, methods: Object.fromEntries(METHODS.filter((m) => m.slot === slot).map((m) => [m.name, m])) }]),
);

/** The definition of a checked request. */
export function methodOf(use: Pick<MethodUse, "slot" | "method">): MethodDefinition {
  const found = METHODS.find((m) => m.slot === use.slot && m.name === use.method);
  if (!found) throw new Error(`no method table entry for ${use.slot}: ${use.method}`);
  return found;
}
