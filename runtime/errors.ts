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
 * By name and code, not `instanceof`: a compiled driver is imported through tsx and brings its
 * own copy of the runtime, whose RuntimeError is another class than the CLI's.
 */
export function isRuntimeError(e: unknown): e is RuntimeError {
  return e instanceof Error && e.name === "RuntimeError" && typeof (e as { code?: unknown }).code === "string";
}
