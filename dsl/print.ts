import type { Value } from "./ast.ts";
import type { MethodUse } from "./method.ts";
import type { ParamValue } from "./schema.ts";

/** A checked parameter value in .pipe syntax: `256`, `12.5%`, `[2, 13]`, `adaptive(threshold: 0.3, min: 2, max: 20)`. */
export function printParam(v: ParamValue): string {
  if (Array.isArray(v)) return `[${v.join(", ")}]`;
  if (typeof v === "object") {
    if ("percent" in v) return `${v.percent}%`;
    const a = v.adaptive;
    return `adaptive(threshold: ${a.threshold}, min: ${a.min}, max: ${a.max})`;
  }
  return String(v);
}

/** `tidal(top_k: 256, full_layers: 2, select_layers: auto)`, in the method's parameter order (checkMethod's); `greedy` alone. */
export function printMethod(use: MethodUse, only: "all" | "given" = "all"): string {
  const keys = Object.keys(use.params).filter((k) => only === "all" || use.given.includes(k));
  return keys.length ? `${use.method}(${keys.map((k) => `${k}: ${printParam(use.params[k]!)}`).join(", ")})` : use.method;
}

/** A value as written, normalised: one space after ':' and ',', strings with JSON escapes. */
export function printValue(v: Value): string {
  switch (v.kind) {
    case "number":
    case "percent":
      return v.text;
    case "string":
      return JSON.stringify(v.value);
    case "name":
      return v.name;
    case "list":
      return `[${v.items.map(printValue).join(", ")}]`;
    case "call":
      return `${v.name}(${v.args.map((a) => (a.name !== undefined ? `${a.name}: ` : "") + printValue(a.value)).join(", ")})`;
  }
}
