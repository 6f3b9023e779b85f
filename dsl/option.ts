import type { Diagnostic } from "./diagnostics.ts";
import { Diagnostics, formatDiagnostics } from "./diagnostics.ts";
import { checkMethod, type MethodUse } from "./method.ts";
import { parseValue } from "./parse.ts";
import { SLOTS } from "./schema.ts";
import { suggestion } from "./suggest.ts";

export interface MethodOption {
  use?: MethodUse;
  diagnostics: Diagnostic[];
  /** The diagnostics formatted against the option text (`--kv:1:11: error: ...` plus caret), or "". */
  message: string;
}

/**
 * Parses one method expression given on a command line, e.g. `--kv 'streaming(sinks: 4, window: 60)'`,
 * with the same parser, schema and messages as a .pipe file (a trailing `?` marks it optional).
 * `slot` is kv, attention, speculate, sampling or prune. Checks against a model (layer ranges, draft vocabulary) are the caller's.
 */
export function parseMethodOption(text: string, slot: string): MethodOption {
  const diags = new Diagnostics();
  const origin = `--${slot}`;
  if (!(slot in SLOTS)) {
    diags.error(`unknown option slot '${slot}'${suggestion(slot, Object.keys(SLOTS))}`);
    return { diagnostics: diags.items, message: formatDiagnostics(diags.items, origin, text) };
  }
  // A trailing '?' marks the request optional, as after a .pipe setting (`--kv 'streaming?'`).
  const optional = /\?\s*$/.test(text);
  const parsed = parseValue(optional ? text.replace(/\?\s*$/, "") : text);
  const use = parsed.ast ? checkMethod(slot, parsed.ast, diags) : undefined;
  if (use && optional) use.optional = true;
  const all = [...parsed.diagnostics.items, ...diags.items];
  if (all.some((d) => d.severity === "error")) return { diagnostics: all, message: formatDiagnostics(all, origin, text) };
  return { use, diagnostics: all, message: formatDiagnostics(all, origin, text) };
}
