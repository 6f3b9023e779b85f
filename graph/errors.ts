/**
 * The one error type pipec shows to users. Its message is a single line that names the problem;
 * `location` points into the user's file where there is one. The CLI prints these without a stack.
 */
export interface SourceLocation {
  file?: string;
  line?: number;
  column?: number;
}

export class PipecError extends Error {
  readonly code: string;
  readonly location: SourceLocation | undefined;

  constructor(code: string, message: string, location?: SourceLocation) {
    super(message);
    this.name = "PipecError";
    this.code = code;
    this.location = location;
  }

  /** `file:line:col: message` (as much of the location as is known). */
  format(): string {
    const loc = this.location;
    if (!loc?.file) return this.message;
    const parts = [loc.file, loc.line, loc.column].filter((p) => p !== undefined);
    return `${parts.join(":")}: ${this.message}`;
  }
}

export function isPipecError(e: unknown): e is PipecError {
  return e instanceof PipecError;
}
