import type { ParamSpec } from "../../dsl/schema.ts";
import { printParam } from "../../dsl/print.ts";
import { PassRegistry, type OptionSpec, type PassEntry } from "../../graph/pass-manager/registry.ts";
import { supportPassRegistry } from "../../passes/index.ts";
import { METHODS } from "./index.ts";
import type { MethodDefinition, MethodPass } from "./method.ts";

/**
 * Every pass `--passes` and `pipec passes` know: the support passes, then each method's own pass,
 * whose options are the method's parameters with the table's defaults (and the pass's extras).
 */
export function defaultRegistry(): PassRegistry {
  const registry = supportPassRegistry();
  for (const method of METHODS) if (method.lowering.level === "graph" && "pass" in method.lowering) registry.register(methodPassEntry(method, method.lowering.pass));
  return registry;
}

function methodPassEntry(method: MethodDefinition, pass: MethodPass<never>): PassEntry {
  const params = Object.entries(method.params).map(([key, param]): [string, OptionSpec] => [key, optionSpec(param)]);
  const extra = Object.entries(pass.extra ?? {}).map(([key, { lowered: _, ...spec }]): [string, OptionSpec] => [key, spec]);
  const typed = pass as unknown as MethodPass<unknown>;
  return { name: pass.name, options: Object.fromEntries([...params, ...extra]), create: (options) => typed.create(typed.read(options)) };
}

/** A parameter as a `--passes` option: numbers and flags as such, the rest as .pipe text the pass reads. */
function optionSpec(param: ParamSpec): OptionSpec {
  const type = param.type.kind === "int" ? "int" : param.type.kind === "number" ? "number" : param.type.kind === "bool" ? "boolean" : "string";
  const spec: OptionSpec = { type, description: param.doc };
  if (param.default !== undefined) spec.default = type === "string" ? printParam(param.default) : (param.default as number | boolean);
  return spec;
}
