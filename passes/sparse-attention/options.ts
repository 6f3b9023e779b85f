import { PipecError } from "../../graph/errors.ts";

/** Reads a layer list as a .pipe or --passes writes it: `[2, 13]`, `2,13`; `auto` gives undefined. */
export function parseLayers(text: string, where: string): number[] | undefined {
  if (text.trim() === "auto") return undefined;
  const items = text.replace(/^\s*\[|\]\s*$/g, "").split(",").map((s) => s.trim()).filter((s) => s !== "");
  const layers = items.map(Number);
  if (items.length === 0 || layers.some((l) => !Number.isInteger(l) || l < 0)) {
    throw new PipecError("pass-option", `${where}: '${text}' is not a list of layer indices ([2, 13]) or auto`);
  }
  return layers;
}

/** Reads a count that may be `auto` (the pass chooses): `128`, `auto`. */
export function parseAutoCount(text: string, where: string): number | "auto" {
  if (text.trim() === "auto") return "auto";
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new PipecError("pass-option", `${where}: '${text}' is neither a count (>= 0) nor auto`);
  return n;
}
