import { sameDim } from "../symbolic-dim.ts";
import type { Dim, TensorType } from "../types.ts";
import type { RuleTable, ShapeRule } from "./context.ts";

/**
 * Control flow. Subgraphs are inferred before their node (see index.ts); an If output is whatever
 * both branches agree on. A Loop-carried value keeps only what its initial value and the body's
 * result agree on (it may change per iteration); a Loop scan output stacks the body's per-iteration
 * value along a new leading axis of unknown length. Scan is left alone.
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

/** Loop(M, cond, v_initial...) with body (iter, cond, v...) -> (cond, v..., scan...): outputs (v_final..., scan...). */
const loopRule: ShapeRule = (ctx) => {
  const body = ctx.node.attributes.get("body")?.graphs[0];
  if (!body) return;
  const carried = ctx.inputCount - 2;
  ctx.node.outputs.forEach((_, i) => {
    const result = tensorOf(body.outputs[i + 1]?.type);
    if (i < carried) {
      const initial = ctx.type(i + 2);
      const agreed = result && initial ? agreedShape(initial.shape, result.shape) : undefined;
      ctx.setOutput(i, initial?.dtype || result?.dtype, agreed);
    } else if (result) {
      ctx.setOutput(i, result.dtype, result.shape && [undefined, ...result.shape]);
    }
  });
};

function tensorOf(t: { kind: string } | undefined): TensorType | undefined {
  return t?.kind === "tensor" ? (t as TensorType) : undefined;
}

function agreedShape(a: Dim[] | undefined, b: Dim[] | undefined): Dim[] | undefined {
  if (!a || !b || a.length !== b.length) return undefined;
  return a.map((d, i) => (sameDim(d, b[i]) ? d : undefined));
}

export const controlFlowRules: RuleTable = { If: ifRule, Loop: loopRule };
