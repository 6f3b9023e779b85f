/**
 * The runtime's user-facing error: one line that says what is wrong and what to do.
 * The runtime stands alone (a generated driver imports it without the compiler), so this
 * mirrors the compiler's PipecError shape (`code` + single-line message) instead of importing it.
 */
export class RuntimeError extends Error {
  readonly code: string;

  constructor(code: string, message: string) {
    super(message);
    this.name = "RuntimeError";
    this.code = code;
  }
}

/**
 * By shape, not only by class: a compiled driver is imported through tsx (compiler/pipeline/run.ts),
 * which loads its own copy of the runtime, so its errors are not instances of this module's class.
 */
export function isRuntimeError(e: unknown): e is RuntimeError {
  return e instanceof RuntimeError || (e instanceof Error && e.name === "RuntimeError" && typeof (e as { code?: unknown }).code === "string");
}
