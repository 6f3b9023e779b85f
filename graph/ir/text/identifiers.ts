/** Names in the text form: bare when they are identifiers, else quoted. */

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function isIdentifier(s: string): boolean {
  return IDENTIFIER.test(s);
}

/** `"…"` with `\` and `"` escaped by a backslash (the only escapes the syntax has). */
export function printQuoted(s: string): string {
  return `"${s.replace(/[\\"]/g, "\\$&")}"`;
}

export function printId(s: string): string {
  return isIdentifier(s) ? s : printQuoted(s);
}

/** The inverse of printQuoted, for a token that includes its quotes. */
export function unquote(token: string): string {
  return token.slice(1, -1).replace(/\\(.)/gs, "$1");
}
