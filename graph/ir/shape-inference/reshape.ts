import { divDims, mulDims, productOfDims } from "../symbolic-dim.ts";
import type { Dim } from "../types.ts";
import type { NodeContext, RuleTable, ShapeRule } from "./context.ts";
import { broadcastShapes, normalizeAxis, unknownDims } from "./dims.ts";

/** Ops that rearrange a tensor's axes without touching its data: Reshape, Flatten, Transpose, (Un)Squeeze, Expand, Tile. */

const reshape: ShapeRule = (ctx) => {
  const input = ctx.shape(0);
  const target = ctx.known(1);
  if (!target) {
    const len = ctx.shape(1)?.[0];
    ctx.setOutput(0, ctx.dtype(0), typeof len === "number" ? unknownDims(len) : undefined);
    return;
  }
  const allowZero = ctx.node.attrInt("allowzero", 0) === 1;
  const out: Dim[] = target.map((t, i) => (t === 0 && !allowZero ? input?.[i] : t === -1 ? undefined : t));
  const inferIndex = target.indexOf(-1);
  if (inferIndex >= 0 && input) {
    const rest = productOfDims(out.filter((_, i) => i !== inferIndex));
    out[inferIndex] = divDims(productOfDims(input), rest);
  }
  ctx.setOutput(0, ctx.dtype(0), out);
  passKnown(ctx);
};

/** Flatten: [d0 .. d(axis-1)] and [d(axis) ..] each collapse to one dim. */
const flatten: ShapeRule = (ctx) => {
  const input = ctx.shape(0);
  if (!input) return ctx.setOutput(0, ctx.dtype(0), [undefined, undefined]);
  const axis = normalizeAxis(ctx.node.attrInt("axis", 1), input.length);
  ctx.setOutput(0, ctx.dtype(0), [productOfDims(input.slice(0, axis)), productOfDims(input.slice(axis))]);
};

const transpose: ShapeRule = (ctx) => {
  const input = ctx.shape(0);
  const perm = ctx.node.attrInts("perm") ?? input?.map((_, i) => input.length - 1 - i);
  ctx.setOutput(0, ctx.dtype(0), perm && input ? perm.map((p) => input[p]) : perm ? unknownDims(perm.length) : undefined);
};

/** Axes from the attribute (before opset 13) or the second input. */
function axesOf(ctx: NodeContext): number[] | undefined {
  return ctx.opset() < 13 ? ctx.node.attrInts("axes") : ctx.has(1) ? ctx.knownInts(1) : undefined;
}

const unsqueeze: ShapeRule = (ctx) => {
  const input = ctx.shape(0);
  const axes = axesOf(ctx);
  if (!input || !axes) return ctx.setOutput(0, ctx.dtype(0), undefined);
  const rank = input.length + axes.length;
  const at = new Set(axes.map((a) => normalizeAxis(a, rank)));
  const rest = [...input];
  ctx.setOutput(0, ctx.dtype(0), Array.from({ length: rank }, (_, i) => (at.has(i) ? 1 : rest.shift())));
  passKnown(ctx);
};

const squeeze: ShapeRule = (ctx) => {
  const input = ctx.shape(0);
  const axes = axesOf(ctx);
  const explicit = ctx.opset() < 13 ? axes !== undefined : ctx.has(1);
  if (!input || (explicit && !axes)) return ctx.setOutput(0, ctx.dtype(0), undefined);
  // Without axes every 1 goes: only decidable when no dim is symbolic or unknown.
  if (!explicit && input.some((d) => typeof d !== "number")) return ctx.setOutput(0, ctx.dtype(0), undefined);
  const drop = new Set(explicit ? axes!.map((a) => normalizeAxis(a, input.length)) : input.flatMap((d, i) => (d === 1 ? [i] : [])));
  ctx.setOutput(0, ctx.dtype(0), input.filter((_, i) => !drop.has(i)));
  passKnown(ctx);
};

/** Expand broadcasts the input against the target shape. */
const expand: ShapeRule = (ctx) => {
  const target = ctx.known(1);
  const len = ctx.shape(1)?.[0];
  const shape = target ?? (typeof len === "number" ? unknownDims(len) : undefined);
  ctx.setOutput(0, ctx.dtype(0), shape ? broadcastShapes([ctx.shape(0), shape]) : undefined);
};

const tile: ShapeRule = (ctx) => {
  const input = ctx.shape(0);
  const repeats = ctx.known(1);
  if (!input) return ctx.setOutput(0, ctx.dtype(0), undefined);
  ctx.setOutput(0, ctx.dtype(0), input.map((d, i) => mulDims(d, repeats?.[i])));
};

/** Reshaping ops keep the elements: a known input stays known. */
function passKnown(ctx: NodeContext): void {
  const k = ctx.known(0);
  if (k) ctx.setKnown(0, k);
}

export const reshapeRules: RuleTable = {
  Reshape: reshape,
  Flatten: flatten,
  Transpose: transpose,
  Unsqueeze: unsqueeze,
  Squeeze: squeeze,
  Expand: expand,
  Tile: tile,
};
