import { sameDim } from "../symbolic-dim.ts";
import type { Dim, TensorType } from "../types.ts";
import type { RuleTable, ShapeRule } from "./context.ts";

/**
 * Control flow. Subgraphs are inferred before their node (see index.ts); an If output is whatever
 * both branches agree on. Loop and Scan are left alone: their carried shapes can change per iteration.
 */

const ifRule: ShapeRule = (ctx) => {
  const [thenBranch, elseBranch] = [ctx.node.attributes.get("then_branch")?.graphs[0], ctx.node.attributes.get("else_branch")?.graphs[0]];
  if (!thenBranch || !elseBranch) return;
  ctx.node.outputs.forEach((_, i) => {
    const [a, b] = [tensorOf(thenBranch.outputs[i]?.type), tensorOf(elseBranch.outputs[i]?.type)];
    if (!a || !b) return;
    ctx.setOutput(i, a.dtype === b.dtype ? a.dtype : undefined, agreedShape(a.shape, b.shape));
  });
};

function tensorOf(t: { kind: string } | undefined): TensorType | undefined {
  return t?.kind === "tensor" ? (t as TensorType) : undefined;
}

function agreedShape(a: Dim[] | undefined, b: Dim[] | undefined): Dim[] | undefined {
  if (!a || !b || a.length !== b.length) return undefined;
  return a.map((d, i) => (sameDim(d, b[i]) ? d : undefined));
}

export const controlFlowRules: RuleTable = { If: ifRule };
