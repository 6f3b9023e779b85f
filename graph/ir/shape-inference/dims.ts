import { sameDim } from "../symbolic-dim.ts";
import type { Dim } from "../types.ts";

/** Numpy broadcasting of shapes; undefined when a rank is unknown. A dim is unknown where the result cannot be decided. */
export function broadcastShapes(shapes: readonly (Dim[] | undefined)[]): Dim[] | undefined {
  if (shapes.some((s) => s === undefined)) return undefined;
  const rank = Math.max(0, ...shapes.map((s) => s!.length));
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    // Missing leading axes and literal 1s stretch to whatever the others have.
    const dims = shapes.map((s) => (i - rank + s!.length >= 0 ? s![i - rank + s!.length] : 1)).filter((d) => d !== 1);
    out.push(broadcastDim(dims));
  }
  return out;
}

function broadcastDim(dims: Dim[]): Dim {
  if (dims.length === 0) return 1;
  const number = dims.find((d) => typeof d === "number");
  if (number !== undefined) return number;
  // Symbolic or unknown operands: only known when all agree (a symbol might be 1 at run time).
  return dims.every((d) => sameDim(d, dims[0])) ? dims[0] : undefined;
}

/** A possibly negative axis, made non-negative for `rank`. */
export function normalizeAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

/** The dim two inputs must share: whichever is more precise, preferring a number. */
export function unifyDims(a: Dim, b: Dim): Dim {
  if (a === undefined) return b;
  if (b === undefined) return a;
  if (typeof b === "number" && typeof a !== "number") return b;
  return a;
}

/** A shape of `rank` unknown dims (the rank is all that is known). */
export function unknownDims(rank: number): Dim[] {
  return new Array<Dim>(rank).fill(undefined);
}
