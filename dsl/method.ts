import type { Span, Value } from "./ast.ts";
import type { Diagnostics } from "./diagnostics.ts";
import { suggestion } from "./suggest.ts";
import type { AdaptiveBounds, MethodTable, ParamSpec, ParamType, ParamValue } from "./schema.ts";

/** A checked method request: `tidal(top_k: 256)` with every default filled in. */
export interface MethodUse {
  slot: string;
  method: string;
  params: Record<string, ParamValue>;
  /** Parameters the user wrote (the rest are defaults). */
  given: string[];
  lossy: boolean;
  span?: Span;
  /** Spans of given parameter values, for checks against the model. */
  paramSpans: Record<string, Span>;
  /** Written with `?`: where the model cannot take it, a warning and nothing applied, instead of an error. */
  optional?: boolean;
}

export function defaultMethod(slot: string, methods: MethodTable): MethodUse {
  const spec = methods[slot]!;
  const method = spec.methods[spec.default]!;
  const params: Record<string, ParamValue> = {};
  for (const [k, p] of Object.entries(method.params)) if (p.default !== undefined) params[k] = p.default;
  return { slot, method: spec.default, params, given: [], lossy: method.lossy, paramSpans: {} };
}

/** Checks `value` as a method of `slot` in `methods`; reports every problem and returns what could be made of it (parameters in the method's order). */
export function checkMethod(slot: string, value: Value, diags: Diagnostics, methods: MethodTable): MethodUse | undefined {
  const slotSpec = methods[slot]!;
  if (value.kind !== "name" && value.kind !== "call") {
    diags.error(`${slot}: expected a method (${Object.keys(slotSpec.methods).join(", ")})`, value.span);
    return undefined;
  }
  const name = value.kind === "name" ? value.name : value.name;
  const nameSpan = value.kind === "name" ? value.span : value.nameSpan;
  const spec = slotSpec.methods[name];
  if (!spec) {
    diags.error(`unknown ${slot} method '${name}'${suggestion(name, Object.keys(slotSpec.methods))}`, nameSpan);
    return undefined;
  }
  const use: MethodUse = { slot, method: name, params: {}, given: [], lossy: spec.lossy, span: nameSpan, paramSpans: {} };
  const names = Object.keys(spec.params);
  const args = value.kind === "call" ? value.args : [];
  args.forEach((arg, i) => {
    const key = arg.name ?? names[i];
    const keySpan = arg.nameSpan ?? arg.value.span;
    if (key === undefined) {
      diags.error(names.length ? `${slot}: ${name} takes ${names.length} parameter${names.length > 1 ? "s" : ""} (${names.join(", ")})` : `${slot}: ${name} takes no parameters`, arg.value.span);
      return;
    }
    const param = spec.params[key];
    if (!param) {
      const hint = names.length ? suggestion(key, names) : " (it takes none)";
      diags.error(`${slot}: ${name} has no parameter '${key}'${hint}`, keySpan);
      return;
    }
    if (use.given.includes(key)) {
      diags.error(`${slot}: parameter '${key}' is given twice`, keySpan);
      return;
    }
    const checked = checkParam(`${name}: ${key}`, param.type, arg.value, diags);
    if (checked === undefined) return;
    use.params[key] = checked;
    use.given.push(key);
    use.paramSpans[key] = arg.value.span;
  });
  const given = use.params;
  use.params = {};
  for (const [key, param] of Object.entries(spec.params) as [string, ParamSpec][]) {
    if (key in given) use.params[key] = given[key]!;
    else if (param.default === undefined) diags.error(`${slot}: ${name} needs '${key}': ${param.doc}`, nameSpan);
    else use.params[key] = param.default;
  }
  const problem = spec.check && Object.keys(spec.params).every((k) => k in use.params) ? spec.check(use.params) : undefined;
  if (problem) diags.error(`${slot}: ${name}: ${problem}`, nameSpan);
  return use;
}

function describeNumber(t: { min?: number; max?: number; minExclusive?: boolean }): string {
  if (t.min !== undefined && t.max !== undefined) return `between ${t.min} and ${t.max}`;
  if (t.min !== undefined) return t.minExclusive ? `greater than ${t.min}` : `at least ${t.min}`;
  return t.max !== undefined ? `at most ${t.max}` : "";
}

export function checkParam(what: string, type: ParamType, v: Value, diags: Diagnostics): ParamValue | undefined {
  const fail = (message: string): undefined => {
    diags.error(`${what} ${message}`, v.span);
    return undefined;
  };
  switch (type.kind) {
    case "int": {
      if (v.kind !== "number" || !Number.isInteger(v.value)) return fail(`must be an integer, got ${show(v)}`);
      if ((type.min !== undefined && v.value < type.min) || (type.max !== undefined && v.value > type.max)) return fail(`must be ${describeNumber(type)}, got ${v.text}`);
      return v.value;
    }
    case "number": {
      if (v.kind !== "number") return fail(`must be a number, got ${show(v)}`);
      const low = type.min !== undefined && (type.minExclusive ? v.value <= type.min : v.value < type.min);
      if (low || (type.max !== undefined && v.value > type.max)) return fail(`must be ${describeNumber(type)}, got ${v.text}`);
      return v.value;
    }
    case "bool":
      if (v.kind === "name" && (v.name === "true" || v.name === "false")) return v.name === "true";
      return fail(`must be true or false, got ${show(v)}`);
    case "budget":
      if (v.kind === "percent") return v.value > 0 && v.value <= 100 ? { percent: v.value } : fail(`must be a percentage above 0% and at most 100%, got ${v.text}`);
      if (v.kind !== "number" || !Number.isInteger(v.value)) return fail(`must be a token count or a percentage (256, 12.5%), got ${show(v)}`);
      return v.value > 0 ? v.value : fail(`must be positive, got ${v.text}`);
    case "layers": {
      if (type.auto && v.kind === "name" && v.name === "auto") return "auto";
      if (v.kind !== "list") return fail(`must be ${type.auto ? "auto or " : ""}a list of layer indices ([2, 13]), got ${show(v)}`);
      const out: number[] = [];
      for (const item of v.items) {
        if (item.kind !== "number" || !Number.isInteger(item.value) || item.value < 0) {
          diags.error(`${what}: a layer index is a non-negative integer, got ${show(item)}`, item.span);
          return undefined;
        }
        out.push(item.value);
      }
      return out;
    }
    case "model":
      return v.kind === "name" ? v.name : fail(`must name a declared model${type.keywords?.length ? ` or be ${type.keywords.join(" or ")}` : ""}, got ${show(v)}`);
    case "auto-or-int": {
      if (v.kind === "name" && v.name === "auto") return "auto";
      const min = type.min ?? 1;
      if (v.kind === "number" && Number.isInteger(v.value) && v.value >= min) return v.value;
      return fail(`must be auto or ${min === 1 ? "a positive integer" : `an integer of at least ${min}`}, got ${show(v)}`);
    }
    case "draft-length":
      return checkDraftLength(what, v, diags, type.adaptive);
  }
}

function checkDraftLength(what: string, v: Value, diags: Diagnostics, defaults: AdaptiveBounds): ParamValue | undefined {
  if (v.kind === "number") {
    if (Number.isInteger(v.value) && v.value >= 1) return v.value;
    diags.error(`${what} must be a positive integer, got ${v.text}`, v.span);
    return undefined;
  }
  const isAdaptive = (v.kind === "name" || v.kind === "call") && (v.kind === "name" ? v.name : v.name) === "adaptive";
  if (!isAdaptive) {
    diags.error(`${what} must be a positive integer or adaptive(threshold: ${defaults.threshold}, min: ${defaults.min}, max: ${defaults.max}), got ${show(v)}`, v.span);
    return undefined;
  }
  const out = { ...defaults };
  const keys: (keyof AdaptiveBounds)[] = ["threshold", "min", "max"];
  let ok = true;
  (v.kind === "call" ? v.args : []).forEach((arg, i) => {
    const key = (arg.name ?? keys[i]) as keyof AdaptiveBounds | undefined;
    if (key === undefined || !keys.includes(key)) {
      diags.error(`adaptive has no parameter '${arg.name ?? i}'${suggestion(arg.name ?? "", keys)}`, arg.nameSpan ?? arg.value.span);
      ok = false;
      return;
    }
    const type: ParamType = key === "threshold" ? { kind: "number", min: 0, max: 1, minExclusive: true } : { kind: "int", min: 1 };
    const checked = checkParam(`adaptive: ${key}`, type, arg.value, diags);
    if (typeof checked === "number") out[key] = checked;
    else ok = false;
  });
  if (ok && out.min > out.max) {
    diags.error(`adaptive: min (${out.min}) must not exceed max (${out.max})`, v.span);
    return undefined;
  }
  return ok ? { adaptive: out } : undefined;
}

/** A value as the user wrote it, for messages. */
export function show(v: Value): string {
  switch (v.kind) {
    case "number":
    case "percent":
      return v.text;
    case "string":
      return JSON.stringify(v.value);
    case "name":
      return `'${v.name}'`;
    case "list":
      return "a list";
    case "call":
      return `'${v.name}(...)'`;
  }
}
