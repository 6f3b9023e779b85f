import { addDims, divDims, mulDims, subDims } from "../symbolic-dim.ts";
import type { Dim } from "../types.ts";
import type { RuleTable, ShapeRule } from "./context.ts";

/** Convolution and padding: spatial sizes from kernel, strides, dilations and pads (hybrid LLMs use depthwise Conv1d). */

/**
 * Conv: X [N, C, D1..Dk] and W [M, C/group, K1..Kk] give [N, M, O1..Ok], with
 * Oi = floor((Di + pad_begin + pad_end - dilation (Ki - 1) - 1) / stride) + 1; SAME_* auto_pad gives ceil(Di / stride).
 */
const conv: ShapeRule = (ctx) => {
  const [x, w] = [ctx.shape(0), ctx.shape(1)];
  if (!x) return ctx.setOutput(0, ctx.dtype(0), undefined);
  const spatial = x.length - 2;
  const kernel = ctx.node.attrInts("kernel_shape") ?? w?.slice(2);
  const strides = ctx.node.attrInts("strides") ?? new Array<number>(spatial).fill(1);
  const dilations = ctx.node.attrInts("dilations") ?? new Array<number>(spatial).fill(1);
  const pads = ctx.node.attrInts("pads") ?? new Array<number>(2 * spatial).fill(0);
  const autoPad = ctx.node.attrString("auto_pad") ?? "NOTSET";
  const out: Dim[] = [x[0], w?.[0]];
  for (let i = 0; i < spatial; i++) {
    const d = x[i + 2];
    if (autoPad === "SAME_UPPER" || autoPad === "SAME_LOWER") {
      out.push(strides[i] === 1 ? d : typeof d === "number" ? Math.ceil(d / strides[i]) : undefined);
      continue;
    }
    const padded = autoPad === "VALID" ? d : addDims(d, pads[i] + pads[i + spatial]);
    const span = subDims(padded, mulDims(dilations[i], subDims(kernel?.[i], 1)));
    out.push(strides[i] === 1 ? span : floorDiv(subDims(span, 1), strides[i], 1));
  }
  ctx.setOutput(0, ctx.dtype(0), out);
};

/** floor(a / b) + plus, symbolic only when it divides exactly. */
function floorDiv(a: Dim, b: number, plus: number): Dim {
  if (typeof a === "number") return Math.floor(a / b) + plus;
  return addDims(divDims(a, b), plus);
}

/** Pad: each axis grows by its begin and end pads (attribute before opset 11, input after). */
const pad: ShapeRule = (ctx) => {
  const input = ctx.shape(0);
  const pads = ctx.opset() < 11 ? ctx.node.attrInts("pads") : ctx.known(1);
  if (!input || !pads) return ctx.setOutput(0, ctx.dtype(0), input?.map(() => undefined));
  const axes = ctx.opset() >= 18 && ctx.has(3) ? ctx.knownInts(3) : input.map((_, i) => i);
  if (!axes) return ctx.setOutput(0, ctx.dtype(0), input.map(() => undefined));
  const out = [...input];
  axes.forEach((a, i) => {
    const axis = a < 0 ? a + input.length : a;
    out[axis] = addDims(addDims(input[axis], pads[i]), pads[i + axes.length]);
  });
  ctx.setOutput(0, ctx.dtype(0), out);
};

export const convolutionRules: RuleTable = {
  Conv: conv,
  Pad: pad,
};
