import type { Dim } from "./types.ts";

/**
 * Symbolic dimension arithmetic. A symbolic dim is text (`batch_size`, `past_sequence_length +
 * sequence_length`); internally it is a polynomial with integer coefficients over named symbols,
 * printed in one canonical form (terms sorted, constant last) so that the same sum always prints
 * the same and two exporters' spellings of it compare equal.
 */

/** Monomial key (symbols sorted, joined by SEP; `""` for the constant term) -> coefficient. */
type Poly = Map<string, number>;

/** Joins a monomial's symbols in map keys; a character no symbol text contains. */
const SEP = "\u0001";
const IDENT = /^[A-Za-z_][A-Za-z0-9_.:]*$/;

/** The dim in canonical form: numbers stay numbers, expressions are re-printed, a constant expression becomes a number. */
export function canonicalDim(d: Dim): Dim {
  if (typeof d !== "string") return d;
  return fromPoly(toPoly(d));
}

/** True when both dims are known and denote the same size whatever the symbols' values. */
export function sameDim(a: Dim, b: Dim): boolean {
  if (a === undefined || b === undefined) return false;
  if (a === b) return true;
  return canonicalDim(a) === canonicalDim(b);
}

export function addDims(a: Dim, b: Dim): Dim {
  return combine(a, b, (x, y) => x + y, (p, q) => addPoly(p, q, 1));
}

export function subDims(a: Dim, b: Dim): Dim {
  return combine(a, b, (x, y) => x - y, (p, q) => addPoly(p, q, -1));
}

export function mulDims(a: Dim, b: Dim): Dim {
  return combine(a, b, (x, y) => x * y, mulPoly);
}

/** `a / b` when it divides exactly (symbolically: every term of `a` divisible by the single term `b`); otherwise unknown. */
export function divDims(a: Dim, b: Dim): Dim {
  if (a === undefined || b === undefined) return undefined;
  if (typeof a === "number" && typeof b === "number") return b !== 0 && a % b === 0 ? a / b : undefined;
  const p = toPoly(a);
  const q = toPoly(b);
  if (q.size !== 1) return undefined;
  const [[qm, qc]] = [...q];
  if (qc === 0) return undefined;
  const out: Poly = new Map();
  for (const [m, c] of p) {
    const rest = removeFactors(m, qm);
    if (rest === undefined || c % qc !== 0) return undefined;
    out.set(rest, (out.get(rest) ?? 0) + c / qc);
  }
  return fromPoly(out);
}

/** True when `d` cannot be negative: symbols are sizes, so a sum of them with non-negative coefficients is too. */
export function isNonNegative(d: Dim): boolean {
  if (d === undefined) return false;
  if (typeof d === "number") return d >= 0;
  return [...toPoly(d).values()].every((c) => c >= 0);
}

/** The product of all dims, or unknown if any is. */
export function productOfDims(dims: readonly Dim[]): Dim {
  return dims.reduce<Dim>((acc, d) => mulDims(acc, d), 1);
}

/** The size of a dim under concrete symbol values, or undefined if a symbol is unbound. */
export function evaluateDim(d: Dim, bindings: Readonly<Record<string, number>>): number | undefined {
  if (typeof d !== "string") return d;
  let total = 0;
  for (const [m, c] of toPoly(d)) {
    let term = c;
    for (const s of m ? m.split(SEP) : []) {
      const v = bindings[s];
      if (v === undefined) return undefined;
      term *= v;
    }
    total += term;
  }
  return total;
}

/** The symbols a dim mentions. */
export function dimSymbols(d: Dim): string[] {
  if (typeof d !== "string") return [];
  const out = new Set<string>();
  for (const m of toPoly(d).keys()) for (const s of m ? m.split(SEP) : []) out.add(s);
  return [...out].sort();
}

function combine(a: Dim, b: Dim, num: (x: number, y: number) => number, poly: (p: Poly, q: Poly) => Poly): Dim {
  if (a === undefined || b === undefined) return undefined;
  if (typeof a === "number" && typeof b === "number") return num(a, b);
  return fromPoly(poly(toPoly(a), toPoly(b)));
}

function addPoly(p: Poly, q: Poly, sign: number): Poly {
  const out = new Map(p);
  for (const [m, c] of q) out.set(m, (out.get(m) ?? 0) + sign * c);
  return out;
}

function mulPoly(p: Poly, q: Poly): Poly {
  const out: Poly = new Map();
  for (const [pm, pc] of p) {
    for (const [qm, qc] of q) {
      const m = [...(pm ? pm.split(SEP) : []), ...(qm ? qm.split(SEP) : [])].sort().join(SEP);
      out.set(m, (out.get(m) ?? 0) + pc * qc);
    }
  }
  return out;
}

/** The monomial `m` with the factors of `divisor` removed, or undefined when they are not all in it. */
function removeFactors(m: string, divisor: string): string | undefined {
  const factors = m ? m.split(SEP) : [];
  for (const s of divisor ? divisor.split(SEP) : []) {
    const i = factors.indexOf(s);
    if (i < 0) return undefined;
    factors.splice(i, 1);
  }
  return factors.join(SEP);
}

function toPoly(d: number | string): Poly {
  if (typeof d === "number") return new Map([["", d]]);
  return new Parser(d).parse() ?? new Map([[atom(d), 1]]);
}

/** An unparseable text is one opaque symbol; whitespace is collapsed so spacing never matters. */
function atom(text: string): string {
  return text.trim().replace(/\s+/g, " ");
}

function fromPoly(p: Poly): Dim {
  const terms = [...p].filter(([, c]) => c !== 0);
  if (terms.length === 0) return 0;
  if (terms.length === 1 && terms[0][0] === "") return terms[0][1];
  // A lone symbol prints as itself, even one whose text is not an identifier.
  if (terms.length === 1 && terms[0][1] === 1 && !terms[0][0].includes(SEP)) return terms[0][0];
  terms.sort(([a], [b]) => (a === "" ? 1 : b === "" ? -1 : a < b ? -1 : a > b ? 1 : 0));
  let text = "";
  for (const [m, c] of terms) {
    const mag = Math.abs(c);
    const factors = m ? m.split(SEP).map((s) => (IDENT.test(s) ? s : `(${s})`)).join("*") : "";
    const body = m === "" ? String(mag) : mag === 1 ? factors : `${mag}*${factors}`;
    text += text === "" ? (c < 0 ? `-${body}` : body) : c < 0 ? ` - ${body}` : ` + ${body}`;
  }
  return text;
}

/** Recursive descent over `+ - *`, integers, identifiers and parentheses; anything else fails the parse. */
class Parser {
  private pos = 0;
  constructor(private readonly text: string) {}

  parse(): Poly | undefined {
    const p = this.sum();
    this.skipSpace();
    return p && this.pos === this.text.length ? p : undefined;
  }

  private sum(): Poly | undefined {
    let acc = this.product();
    for (;;) {
      if (!acc) return undefined;
      this.skipSpace();
      const c = this.text[this.pos];
      if (c !== "+" && c !== "-") return acc;
      this.pos++;
      const rhs = this.product();
      if (!rhs) return undefined;
      acc = addPoly(acc, rhs, c === "+" ? 1 : -1);
    }
  }

  private product(): Poly | undefined {
    let acc = this.factor();
    for (;;) {
      if (!acc) return undefined;
      this.skipSpace();
      if (this.text[this.pos] !== "*" || this.text[this.pos + 1] === "*") return acc;
      this.pos++;
      const rhs = this.factor();
      if (!rhs) return undefined;
      acc = mulPoly(acc, rhs);
    }
  }

  private factor(): Poly | undefined {
    this.skipSpace();
    const rest = this.text.slice(this.pos);
    if (rest.startsWith("-")) {
      this.pos++;
      const f = this.factor();
      return f && addPoly(new Map(), f, -1);
    }
    if (rest.startsWith("(")) {
      const close = matchingParen(this.text, this.pos);
      if (close < 0) return undefined;
      const inner = this.text.slice(this.pos + 1, close);
      this.pos = close + 1;
      return new Parser(inner).parse() ?? new Map([[atom(inner), 1]]);
    }
    const num = /^\d+/.exec(rest);
    if (num) {
      this.pos += num[0].length;
      return new Map([["", Number(num[0])]]);
    }
    const id = /^[A-Za-z_][A-Za-z0-9_.:]*/.exec(rest);
    if (id) {
      this.pos += id[0].length;
      return new Map([[id[0], 1]]);
    }
    return undefined;
  }

  private skipSpace(): void {
    while (this.text[this.pos] === " ") this.pos++;
  }
}

function matchingParen(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === "(") depth++;
    else if (text[i] === ")" && --depth === 0) return i;
  }
  return -1;
}
