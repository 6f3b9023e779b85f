import { PipecError } from "../errors.ts";
import { OneOfPattern, OpPattern, OutputPattern, PatternBuilder, type PatternValue } from "./pattern.ts";

/** A pattern function, as written in a rule: `(p) => p.op.Add(...)`. */
export type PatternFn = (p: PatternBuilder) => PatternValue;

/** Ops of the default domain whose first two inputs may be swapped (used by a rule's `commute: true`). */
const COMMUTATIVE_OPS = new Set(["Add", "Mul", "Max", "Min", "Sum", "Mean", "And", "Or", "Xor", "Equal", "BitwiseAnd", "BitwiseOr", "BitwiseXor"]);

/** A pattern built once, with what the engine needs to find candidate roots quickly. */
export interface CompiledPattern {
  readonly root: PatternValue;
  /** Op keys (`domain::op`) a root node may have; nodes of other ops are never tried. */
  readonly rootKeys: ReadonlySet<string>;
  /** The longest op chain from the root to a leaf, counting the root. */
  readonly height: number;
}

export function compilePattern(fn: PatternFn, opts: { name?: string; commute?: boolean } = {}): CompiledPattern {
  const root = fn(new PatternBuilder());
  const roots = rootOutputs(root, opts.name);
  if (opts.commute) {
    for (const op of allOps(root)) if (op.domain === "" && COMMUTATIVE_OPS.has(op.op) && op.inputs.length >= 2) op.commutative = true;
  }
  return { root, rootKeys: new Set(roots.map((r) => r.node.key)), height: height(root, new Map()) };
}

/** The ops a root may be: the pattern must end in an op (or alternatives of ops), never a bare variable. */
function rootOutputs(root: PatternValue, name: string | undefined): OutputPattern[] {
  if (root instanceof OutputPattern) return [root];
  if (root instanceof OneOfPattern) return root.alternatives.flatMap(([, alt]) => rootOutputs(alt, name));
  const who = name ? `rule '${name}'` : "pattern";
  throw new PipecError("bad-pattern", `${who}: the pattern must end in an operator, not ${root.describe()}`);
}

function allOps(root: PatternValue): Set<OpPattern> {
  const ops = new Set<OpPattern>();
  const visit = (v: PatternValue | undefined): void => {
    if (v instanceof OutputPattern && !ops.has(v.node)) {
      ops.add(v.node);
      v.node.inputs.forEach(visit);
    } else if (v instanceof OneOfPattern) {
      for (const [, alt] of v.alternatives) visit(alt);
    }
  };
  visit(root);
  return ops;
}

function height(v: PatternValue | undefined, memo: Map<OpPattern, number>): number {
  if (v instanceof OneOfPattern) return Math.max(0, ...v.alternatives.map(([, alt]) => height(alt, memo)));
  if (!(v instanceof OutputPattern)) return 0;
  let h = memo.get(v.node);
  if (h === undefined) {
    h = 1 + Math.max(0, ...v.node.inputs.map((i) => height(i, memo)));
    memo.set(v.node, h);
  }
  return h;
}
