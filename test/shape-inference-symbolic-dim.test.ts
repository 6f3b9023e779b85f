import { describe, expect, it } from "vitest";
import { addDims, canonicalDim, dimSymbols, divDims, evaluateDim, isNonNegative, mulDims, productOfDims, sameDim, subDims } from "../graph/ir/symbolic-dim.ts";

describe("symbolic dims", () => {
  it("prints a sum in one canonical order whatever the operand order", () => {
    expect(addDims("sequence_length", "past_sequence_length")).toBe("past_sequence_length + sequence_length");
    expect(addDims("past_sequence_length", "sequence_length")).toBe("past_sequence_length + sequence_length");
    expect(canonicalDim("s89+s70")).toBe("s70 + s89");
    expect(canonicalDim("  s70   +  s89 ")).toBe("s70 + s89");
  });

  it("keeps plain names and numbers as they are", () => {
    expect(canonicalDim("batch_size")).toBe("batch_size");
    expect(canonicalDim(7)).toBe(7);
    expect(canonicalDim(undefined)).toBeUndefined();
  });

  it("collects like terms and folds constants, constant last", () => {
    expect(addDims("S", "S")).toBe("2*S");
    expect(subDims(addDims("P", "S"), "S")).toBe("P");
    expect(addDims(addDims("S", 1), 2)).toBe("S + 3");
    expect(subDims("T", 1)).toBe("T - 1");
    expect(subDims(0, "S")).toBe("-S");
    expect(canonicalDim("2 + 3")).toBe(5);
  });

  it("multiplies into sorted monomials and divides only exactly", () => {
    expect(mulDims("S", "B")).toBe("B*S");
    expect(productOfDims(["B", "S", 4, 16])).toBe("64*B*S");
    expect(divDims("64*B*S", 16)).toBe("4*B*S");
    expect(divDims(mulDims("B", addDims("P", "S")), "B")).toBe("P + S");
    expect(divDims("B*S", "H")).toBeUndefined();
    expect(divDims("S", 2)).toBeUndefined();
    expect(divDims(7, 2)).toBeUndefined();
    expect(divDims(8, 2)).toBe(4);
  });

  it("compares canonical forms, never unknown dims", () => {
    expect(sameDim("s70 + s89", "s89 + s70")).toBe(true);
    expect(sameDim("(a + b)*c", "a*c + b*c")).toBe(true);
    expect(sameDim("past_sequence_length + sequence_length", "total_sequence_length")).toBe(false);
    expect(sameDim(undefined, undefined)).toBe(false);
    expect(sameDim(4, 4)).toBe(true);
  });

  it("treats text it cannot parse as one opaque symbol", () => {
    expect(canonicalDim("floor(s0/2)")).toBe("floor(s0/2)");
    expect(addDims("floor(s0/2)", "S")).toBe("S + (floor(s0/2))");
    expect(sameDim(addDims("floor(s0/2)", "S"), "S + (floor(s0/2))")).toBe(true);
  });

  it("evaluates under bindings and lists its symbols", () => {
    expect(evaluateDim("past_sequence_length + sequence_length", { past_sequence_length: 5, sequence_length: 1 })).toBe(6);
    expect(evaluateDim("2*B*S - 1", { B: 2, S: 3 })).toBe(11);
    expect(evaluateDim("S", {})).toBeUndefined();
    expect(dimSymbols("P + B*S")).toEqual(["B", "P", "S"]);
  });

  it("knows sums of sizes are non-negative", () => {
    expect(isNonNegative("P + S")).toBe(true);
    expect(isNonNegative("T - 1")).toBe(false);
    expect(isNonNegative(-1)).toBe(false);
  });
});
