import { canonicalDim, sameDim } from "../symbolic-dim.ts";
import type { Dim, TensorType } from "../types.ts";
import type { Value } from "../value.ts";
import type { InferenceReport } from "./context.ts";

/**
 * Folds an inferred type into a value's current one. Inference only adds precision: an unknown
 * dtype, rank or dim is filled in, a symbol gives way to a number, and a declared symbol stays (the
 * inferred expression for it is recorded as an equality). A contradiction keeps the declared type
 * and becomes a warning. Returns true when the value's type changed.
 */
export function mergeInferredType(value: Value, inferred: TensorType, node: string, report: InferenceReport): boolean {
  const current = value.type;
  if (current?.kind === "opaque") return false;
  if (!current) {
    if (!inferred.dtype && !inferred.shape) return false;
    value.type = { kind: "tensor", dtype: inferred.dtype, shape: inferred.shape?.map(canonicalDim) };
    return true;
  }
  const warn = (message: string) => report.warnings.push({ value: value.name, node, message });
  let dtype = current.dtype;
  if (!dtype) dtype = inferred.dtype;
  else if (inferred.dtype && inferred.dtype !== dtype) warn(`declared element type ${dtype}, inferred ${inferred.dtype}`);

  let shape = current.shape;
  if (!shape) shape = inferred.shape?.map(canonicalDim);
  else if (inferred.shape && inferred.shape.length !== shape.length) warn(`declared rank ${shape.length}, inferred rank ${inferred.shape.length}`);
  else if (inferred.shape) shape = shape.map((d, i) => mergeDim(d, inferred.shape![i], (m) => warn(`axis ${i}: ${m}`), value.name, report));

  const changed = dtype !== current.dtype || shape !== current.shape && !sameShape(shape, current.shape);
  if (changed) value.type = { kind: "tensor", dtype, shape };
  return changed;
}

function mergeDim(declared: Dim, inferred: Dim, warn: (m: string) => void, value: string, report: InferenceReport): Dim {
  if (inferred === undefined || sameDim(declared, inferred)) return declared;
  if (declared === undefined) return canonicalDim(inferred);
  if (typeof declared === "number") {
    if (typeof inferred === "number") warn(`declared ${declared}, inferred ${inferred}`);
    return declared;
  }
  if (typeof inferred === "number") return inferred;
  report.equalities.push({ value, declared, inferred: canonicalDim(inferred) });
  return declared;
}

function sameShape(a: Dim[] | undefined, b: Dim[] | undefined): boolean {
  if (!a || !b) return a === b;
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
