import { parseMethodText, type MethodOption } from "../../dsl/option.ts";
import { METHOD_TABLE } from "./index.ts";

/**
 * Parses one method expression given on a command line, e.g. `--kv 'streaming(sinks: 4, window: 60)'`,
 * against the method table with the .pipe parser and messages (a trailing `?` marks it optional).
 * `slot` is kv, attention, speculate, sampling or prune. Checks against a model (layer ranges, draft vocabulary) are the caller's.
 */
export function parseMethodOption(text: string, slot: string): MethodOption {
  return parseMethodText(text, slot, METHOD_TABLE);
}
