import { FloatAttr, AttributeType, type AttributeValue } from "../ir/attribute.ts";
import type { Graph } from "../ir/graph.ts";
import type { Node } from "../ir/node.ts";
import type { Value } from "../ir/value.ts";
import type { CompiledPattern } from "./compile.ts";
import { Match, constantTensor, describeValue } from "./match.ts";
import { ConstantPattern, OneOfPattern, OpPattern, OutputPattern, VarPattern, type AttrConstraint, type PatternValue } from "./pattern.ts";

/** Why a candidate did not match, recorded when tracing: the point its furthest attempt reached. */
export interface MatchFailure {
  /** How many pattern steps had matched before this one failed (larger is closer). */
  progress: number;
  /** Where in the pattern: "input 1 of MatMul", "attribute perm of Transpose". */
  at: string;
  expected: string;
  found: string;
}

/** Where a pattern value sits: the root, or input `input` of a pattern op. */
type Site = { op: OpPattern; input: number } | undefined;
type Continue = () => boolean;

/**
 * Matches one compiled pattern against candidate roots by walking backwards from the root
 * through producers. Choices (commuted inputs, oneOf alternatives) backtrack fully: every
 * binding goes on a trail that is unwound when a later step fails, and the continuation style
 * means a choice made deep in one input is revisited when a sibling input fails. Only when a
 * choice exists is more than one path tried, so an ordinary pattern costs one walk.
 */
export class Matcher {
  private readonly values = new Map<string, Value>();
  private readonly nodes = new Map<OpPattern, Node>();
  private readonly tags = new Map<string, string>();
  private readonly trail: (() => void)[] = [];
  private graph: Graph | undefined;
  /** The furthest failure of the last `matchAt` (only when tracing). */
  failure: MatchFailure | undefined;

  constructor(
    readonly pattern: CompiledPattern,
    private readonly trace = false,
  ) {}

  /**
   * The first match rooted at `root` that `accept` takes (by default the first structural
   * match). `accept` returning false makes the matcher try the remaining choices.
   */
  matchAt(root: Node, accept: (m: Match) => boolean = () => true): Match | undefined {
    this.undo(0);
    this.failure = undefined;
    this.graph = root.graph;
    let found: Match | undefined;
    this.root(this.pattern.root, root, () => {
      const m = this.snapshot(root);
      if (!accept(m)) return false;
      found = m;
      return true;
    });
    this.undo(0);
    return found;
  }

  private root(pv: PatternValue, node: Node, k: Continue): boolean {
    if (pv instanceof OneOfPattern) return this.alternatives(pv, (alt) => this.root(alt, node, () => this.bind(pv.name, node.outputs[0], k)));
    const out = pv as OutputPattern;
    const v = node.outputs[out.index];
    if (!v) return this.trace && this.fail(undefined, out.describe(), `${node.describe()} without output ${out.index}`);
    return this.value(out, v, undefined, k);
  }

  private value(pv: PatternValue | undefined, v: Value | undefined, site: Site, k: Continue): boolean {
    if (pv === undefined) return v === undefined ? k() : this.trace && this.fail(site, "an omitted input", describeValue(v));
    if (!v) return this.trace && this.fail(site, pv.describe(), "an omitted input");
    if (pv.name !== undefined) {
      const bound = this.values.get(pv.name);
      if (bound !== undefined && bound !== v) return this.trace && this.fail(site, `the value bound as '${pv.name}', ${bound}`, describeValue(v));
    }
    if (pv instanceof OutputPattern) return this.output(pv, v, site, k);
    if (pv instanceof VarPattern) {
      const verdict = pv.predicate ? pv.predicate(v) : true;
      if (verdict !== true) return this.trace && this.fail(site, `${pv.describe()} accepted by its predicate`, rejection(verdict, v));
      return this.bind(pv.name, v, k);
    }
    if (pv instanceof ConstantPattern) {
      const tensor = constantTensor(v);
      if (!tensor) return this.trace && this.fail(site, `${pv.describe()}: an initializer or Constant output`, describeValue(v));
      const verdict = pv.predicate ? pv.predicate(tensor, v) : true;
      if (verdict !== true) return this.trace && this.fail(site, `${pv.describe()} accepted by its predicate`, rejection(verdict, v));
      return this.bind(pv.name, v, k);
    }
    const oneOf = pv as OneOfPattern;
    return this.alternatives(oneOf, (alt) => this.value(alt, v, site, () => this.bind(oneOf.name, v, k)));
  }

  private output(pv: OutputPattern, v: Value, site: Site, k: Continue): boolean {
    const op = pv.node;
    const node = v.producer;
    if (!node || node.graph !== this.graph || node.op !== op.op || !sameDomain(node.domain, op.domain)) {
      return this.trace && this.fail(site, pv.describe(), describeValue(v));
    }
    if (v.outputIndex !== pv.index) return this.trace && this.fail(site, pv.describe(), describeValue(v));
    const bound = this.nodes.get(op);
    if (bound) return bound === node ? this.bind(pv.name, v, k) : this.trace && this.fail(site, `the ${op.describe()} matched already, ${bound.describe()}`, node.describe());
    // Bound before its attributes and arity are checked, so the tracer ranks a node of the right
    // op that differs in an attribute above one of the wrong op.
    this.push(() => this.nodes.delete(op));
    this.nodes.set(op, node);
    for (const [name, constraint] of Object.entries(op.attributes)) {
      const verdict = attributeMatches(node, name, constraint);
      if (verdict !== true) return this.trace && this.fail({ op, input: -1 }, `${name}=${formatConstraint(constraint)}`, verdict);
    }
    const patternArity = arity(op.inputs);
    const nodeArity = arity(node.inputs);
    if (op.otherInputs ? nodeArity < patternArity : nodeArity !== patternArity) {
      return this.trace && this.fail(site, `${op.describe()} with ${op.otherInputs ? "at least " : ""}${patternArity} inputs`, `${node.describe()} with ${nodeArity}`);
    }
    const next = () => this.bind(pv.name, v, k);
    if (!op.commutative || patternArity < 2) return this.inputs(op, node, false, 0, next);
    const mark = this.trail.length;
    if (this.inputs(op, node, false, 0, next)) return true;
    this.undo(mark);
    return this.inputs(op, node, true, 0, next);
  }

  private inputs(op: OpPattern, node: Node, swap: boolean, i: number, k: Continue): boolean {
    if (i === op.inputs.length) return k();
    const j = swap && i < 2 ? 1 - i : i;
    return this.value(op.inputs[i], node.inputs[j], { op, input: j }, () => this.inputs(op, node, swap, i + 1, k));
  }

  private alternatives(pv: OneOfPattern, attempt: (alt: PatternValue) => boolean): boolean {
    for (const [label, alt] of pv.alternatives) {
      const mark = this.trail.length;
      this.push(() => this.tags.delete(pv.tag));
      this.tags.set(pv.tag, label);
      if (attempt(alt)) return true;
      this.undo(mark);
    }
    return false;
  }

  private bind(name: string | undefined, v: Value | undefined, k: Continue): boolean {
    if (name === undefined || !v || this.values.has(name)) {
      this.push(noop); // counts as progress for the tracer
      return k();
    }
    this.push(() => this.values.delete(name));
    this.values.set(name, v);
    return k();
  }

  private push(undo: () => void): void {
    this.trail.push(undo);
  }

  private undo(mark: number): void {
    while (this.trail.length > mark) this.trail.pop()!();
  }

  private fail(site: Site, expected: string, found: string): false {
    const progress = this.trail.length;
    if (!this.failure || progress > this.failure.progress) this.failure = { progress, at: siteText(site), expected, found };
    return false;
  }

  private snapshot(root: Node): Match {
    return new Match(root, [...new Set(this.nodes.values())], Object.fromEntries(this.values), Object.fromEntries(this.tags));
  }
}

const noop = (): void => {};

function siteText(site: Site): string {
  if (!site) return "the root";
  return site.input < 0 ? `the attributes of ${site.op.describe()}` : `input ${site.input} of ${site.op.describe()}`;
}

function rejection(verdict: boolean | string, v: Value): string {
  return typeof verdict === "string" ? verdict : `${describeValue(v)}, which it rejected`;
}

function sameDomain(a: string, b: string): boolean {
  return a === b || ((a === "" || a === "ai.onnx") && (b === "" || b === "ai.onnx"));
}

/** Inputs up to the last present one: trailing omitted optional inputs do not count. */
function arity(inputs: readonly unknown[]): number {
  let n = inputs.length;
  while (n > 0 && inputs[n - 1] === undefined) n--;
  return n;
}

/** `true`, or what the node has instead (for the tracer). */
function attributeMatches(node: Node, name: string, constraint: AttrConstraint): true | string {
  const attr = node.attributes.get(name);
  const actual: AttributeValue = attr?.value;
  const found = (): string => (attr ? `${name}=${formatValue(actual)}` : `no attribute ${name}`);
  if (typeof constraint === "function") {
    const verdict = constraint(actual);
    return verdict === true ? true : typeof verdict === "string" ? verdict : found();
  }
  if (!attr) return found();
  const isFloat = attr.type === AttributeType.FLOAT || attr.type === AttributeType.FLOATS;
  return sameAttribute(actual, constraint, isFloat) ? true : found();
}

/** Floats are compared at float32 precision, as ONNX stores them. */
function sameAttribute(actual: AttributeValue, expected: Exclude<AttrConstraint, Function>, isFloat: boolean): boolean {
  const norm = (x: unknown): unknown => (x instanceof FloatAttr ? Math.fround(x.value) : isFloat && typeof x === "number" ? Math.fround(x) : x);
  if (Array.isArray(expected)) {
    return Array.isArray(actual) && actual.length === expected.length && expected.every((e, i) => norm(e) === norm(actual[i]));
  }
  return norm(expected) === norm(actual);
}

function formatConstraint(c: AttrConstraint): string {
  if (typeof c === "function") return "<predicate>";
  return formatValue(c instanceof FloatAttr ? c.value : c);
}

function formatValue(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(formatValue).join(", ")}]`;
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "number") return String(v);
  return v === undefined ? "none" : "<tensor or graph>";
}
