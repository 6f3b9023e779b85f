import type { AttributeValue, FloatAttr } from "../ir/attribute.ts";
import type { Tensor } from "../ir/tensor.ts";
import type { Value } from "../ir/value.ts";

/**
 * Patterns are written as graph-building code against a PatternBuilder that mirrors the IR
 * Builder, so a pattern reads like the subgraph it matches:
 *
 *   (p) => p.op.Add(p.op.MatMul(p.var("a"), p.constant("w")), p.var("bias"))
 *
 * Building a pattern only records its shape; matching is done by the matcher.
 */

/** A predicate on a bound value: `true` accepts; `false` or a reason string rejects. */
export type Predicate<T> = (x: T) => boolean | string;

/** An attribute constraint: a literal the attribute must equal, or a predicate on its value. */
export type AttrConstraint = number | string | FloatAttr | number[] | string[] | ((value: AttributeValue) => boolean | string);
export type AttrConstraints = Record<string, AttrConstraint>;

/** Anything a pattern input can be; `undefined` matches only an omitted optional input. */
export abstract class PatternValue {
  /** The name the matched value is bound under in `match.values`. */
  name: string | undefined;

  /** Binds the value this pattern matches: `p.op.Softmax(s).as("probs")`. */
  as(name: string): this {
    this.name = name;
    return this;
  }

  abstract describe(): string;
}

/** `p.var(name)`: any value (not an omitted input). */
export class VarPattern extends PatternValue {
  constructor(
    name: string | undefined,
    readonly predicate?: Predicate<Value>,
  ) {
    super();
    this.name = name;
  }

  describe(): string {
    return this.name ? `p.var("${this.name}")` : "p.any()";
  }
}

/** `p.constant(name)`: an initializer or the output of a Constant node. */
export class ConstantPattern extends PatternValue {
  constructor(
    name: string,
    readonly predicate?: (tensor: Tensor, value: Value) => boolean | string,
  ) {
    super();
    this.name = name;
  }

  describe(): string {
    return `p.constant("${this.name}")`;
  }
}

/** One operator application in a pattern. Its outputs are OutputPatterns. */
export class OpPattern {
  readonly outputs: OutputPattern[];

  constructor(
    readonly op: string,
    readonly domain: string,
    readonly inputs: readonly (PatternValue | undefined)[],
    readonly attributes: AttrConstraints,
    outputCount: number,
    /** Try both orders of the first two inputs. */
    public commutative: boolean,
    /** The node may have more inputs than the pattern lists. */
    readonly otherInputs: boolean,
  ) {
    this.outputs = Array.from({ length: outputCount }, (_, i) => new OutputPattern(this, i));
  }

  /** `domain::op`, the key candidate nodes are indexed by. */
  get key(): string {
    return opKey(this.domain, this.op);
  }

  describe(): string {
    return this.domain ? `${this.domain}::${this.op}` : this.op;
  }
}

/** Output `index` of an OpPattern: what `p.op.X(...)` returns. */
export class OutputPattern extends PatternValue {
  constructor(
    readonly node: OpPattern,
    readonly index: number,
  ) {
    super();
  }

  /** Lets the producing op match its first two inputs in either order. */
  commute(): this {
    this.node.commutative = true;
    return this;
  }

  describe(): string {
    return this.node.outputs.length > 1 ? `output ${this.index} of ${this.node.describe()}` : this.node.describe();
  }
}

/** `p.oneOf(tag, { a: ..., b: ... })`: the first alternative that matches; its label goes to `match.tags[tag]`. */
export class OneOfPattern extends PatternValue {
  constructor(
    readonly tag: string,
    readonly alternatives: readonly (readonly [label: string, pattern: PatternValue])[],
  ) {
    super();
  }

  describe(): string {
    return `p.oneOf("${this.tag}", ${this.alternatives.map(([l]) => l).join(" | ")})`;
  }
}

type OpArg = PatternValue | undefined | AttrConstraints;
/** `p.op.MatMul(a, b)`, `p.op.Transpose(x, { perm: [0, 2, 1, 3] })`: returns the op's first output. */
export type PatternOps = Record<string, (...args: OpArg[]) => OutputPattern>;

export interface PatternNodeOptions {
  domain?: string;
  /** Number of outputs the op has. Default 1. */
  outputs?: number;
  attributes?: AttrConstraints;
  /** Match the first two inputs in either order. */
  commute?: boolean;
  /** Accept nodes with more inputs than listed (the extra ones are not looked at). */
  otherInputs?: boolean;
}

export class PatternBuilder {
  readonly op: PatternOps;

  constructor() {
    this.op = this.domain("");
  }

  /** Operators of another domain: `p.domain("com.microsoft").Attention(...)`. */
  domain(domain: string): PatternOps {
    return new Proxy({} as PatternOps, {
      get: (_, op: string) =>
        (...args: OpArg[]) => {
          const last = args[args.length - 1];
          const attributes = last !== undefined && !(last instanceof PatternValue) ? (args.pop() as AttrConstraints) : {};
          return this.node(op, args as (PatternValue | undefined)[], { domain, attributes }).outputs[0]!;
        },
    });
  }

  /** An op with several outputs: `const [values, indices] = p.node("TopK", [x, k], { outputs: 2 }).outputs`. */
  node(op: string, inputs: readonly (PatternValue | undefined)[], opts: PatternNodeOptions = {}): OpPattern {
    const domain = opts.domain === "ai.onnx" ? "" : (opts.domain ?? "");
    return new OpPattern(op, domain, inputs, opts.attributes ?? {}, opts.outputs ?? 1, opts.commute ?? false, opts.otherInputs ?? false);
  }

  /** Binds any value under `name`; the same name used twice must bind the same value. */
  var(name: string, predicate?: Predicate<Value>): VarPattern {
    return new VarPattern(name, predicate);
  }

  /** Any value, not bound. */
  any(predicate?: Predicate<Value>): VarPattern {
    return new VarPattern(undefined, predicate);
  }

  /** Binds an initializer or a Constant node's output under `name`. */
  constant(name: string, predicate?: (tensor: Tensor, value: Value) => boolean | string): ConstantPattern {
    return new ConstantPattern(name, predicate);
  }

  /** Tagged alternatives, tried in order; `match.tags[tag]` says which one matched. */
  oneOf(tag: string, alternatives: Record<string, PatternValue>): OneOfPattern {
    return new OneOfPattern(tag, Object.entries(alternatives));
  }
}

export function opKey(domain: string, op: string): string {
  return domain && domain !== "ai.onnx" ? `${domain}::${op}` : op;
}
