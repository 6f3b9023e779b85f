// The --json form of a .pipe file's diagnostics, shared by check, compile and run.
import type { Diagnostic } from "../../dsl/diagnostics.ts";

export interface DiagnosticJson {
  severity: "error" | "warning";
  message: string;
  line?: number;
  column?: number;
}

/** Every diagnostic (the text form shows the first 20), with its place where it has one. */
export function diagnosticsJson(items: readonly Diagnostic[]): DiagnosticJson[] {
  return items.map((d) => ({ severity: d.severity, message: d.message, ...(d.span && { line: d.span.line, column: d.span.column }) }));
}

export function countErrors(items: readonly Diagnostic[]): { errors: number; warnings: number } {
  const errors = items.filter((d) => d.severity === "error").length;
  return { errors, warnings: items.length - errors };
}
