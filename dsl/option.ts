import type { Diagnostic } from "./diagnostics.ts";
import { Diagnostics, formatDiagnostics } from "./diagnostics.ts";
import { checkMethod, type MethodUse } from "./method.ts";
import { parseValue } from "./parse.ts";
import type { MethodTable } from "./schema.ts";
import { suggestion } from "./suggest.ts";

export interface MethodOption {
  use?: MethodUse;
  diagnostics: Diagnostic[];
  /** The diagnostics formatted against the option text (`--kv:1:11: error: ...` plus caret), or "". */
  message: string;
}

/**
 * Parses one method expression given on a command line, e.g. `--kv 'streaming(sinks: 4, window: 60)'`,
 * with the same parser, methods and messages as a .pipe file (a trailing `?` marks it optional).
 * `slot` is one of `methods`' slots. Checks against a model (layer ranges, draft vocabulary) are the caller's.
 */
export function parseMethodText(text: string, slot: string, methods: MethodTable): MethodOption {
  const diags = new Diagnostics();
  const origin = `--${slot}`;
  if (!(slot in methods)) {
    diags.error(`unknown option slot '${slot}'${suggestion(slot, Object.keys(methods))}`);
    return { diagnostics: diags.items, message: formatDiagnostics(diags.items, origin, text) };
  }
  // A trailing '?' marks the request optional, as after a .pipe setting (`--kv 'streaming?'`).
  const optional = /\?\s*$/.test(text);
  const parsed = parseValue(optional ? text.replace(/\?\s*$/, "") : text);
  const use = parsed.ast ? checkMethod(slot, parsed.ast, diags, methods) : undefined;
  if (use && optional) use.optional = true;
  const all = [...parsed.diagnostics.items, ...diags.items];
  if (all.some((d) => d.severity === "error")) return { diagnostics: all, message: formatDiagnostics(all, origin, text) };
  return { use, diagnostics: all, message: formatDiagnostics(all, origin, text) };
}
