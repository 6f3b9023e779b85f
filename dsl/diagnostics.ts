import type { Span } from "./ast.ts";

export interface Diagnostic {
  severity: "error" | "warning";
  message: string;
  /** Absent for problems that have no place in the text (an unreadable file). */
  span?: Span;
  /** A lexing or parsing error (as opposed to a check of what was parsed). */
  syntax?: boolean;
}

/** Collects every problem of a file, so one run reports them all. */
export class Diagnostics {
  readonly items: Diagnostic[] = [];

  error(message: string, span?: Span): void {
    this.items.push({ severity: "error", message, span });
  }

  syntaxError(message: string, span: Span): void {
    this.items.push({ severity: "error", message, span, syntax: true });
  }

  warning(message: string, span?: Span): void {
    this.items.push({ severity: "warning", message, span });
  }

  get hasErrors(): boolean {
    return this.items.some((d) => d.severity === "error");
  }

  /** In source order (errors without a place first), so output reads top to bottom. */
  sorted(): Diagnostic[] {
    return [...this.items].sort((a, b) => (a.span?.offset ?? -1) - (b.span?.offset ?? -1));
  }
}

/**
 * `file:line:col: error: message`, then the source line and a caret under the problem:
 *
 *     chat.pipe:4:9: error: unknown method 'tidl' for 'attention' (did you mean 'tidal'?)
 *       attention: tidl(top_k: 256)
 *                  ^~~~
 */
export function formatDiagnostic(d: Diagnostic, file: string, source: string): string {
  if (!d.span) return `${file}: ${d.severity}: ${d.message}`;
  const { line, column, length } = d.span;
  const text = source.split("\n")[line - 1]?.replace(/\r$/, "") ?? "";
  const underline = "^" + "~".repeat(Math.max(0, Math.min(length, text.length - column + 1) - 1));
  const pad = text.slice(0, column - 1).replace(/[^\t]/g, " ");
  return `${file}:${line}:${column}: ${d.severity}: ${d.message}\n  ${text}\n  ${pad}${underline}`;
}

/** Diagnostics shown in full; past these, one line counts the rest (a wrong file can give thousands). */
export const SHOWN_DIAGNOSTICS = 20;

export function formatDiagnostics(items: readonly Diagnostic[], file: string, source: string, limit = SHOWN_DIAGNOSTICS): string {
  const shown = items.slice(0, limit).map((d) => formatDiagnostic(d, file, source));
  const rest = items.length - limit;
  if (rest > 0) shown.push(`${file}: and ${rest} more problem${rest > 1 ? "s" : ""}`);
  return shown.join("\n");
}
