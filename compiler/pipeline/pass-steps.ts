import type { MethodUse } from "../../dsl/method.ts";
import type { Pass } from "../../graph/pass-manager/pass.ts";
import type { OptionValue, PassRegistry } from "../../graph/pass-manager/registry.ts";
import type { MethodPass } from "../methods/method.ts";
import { paramText } from "../methods/params.ts";
import type { GraphPassStep } from "./ir.ts";

/** A method's own pass for a request: its options typed from the checked parameters, and as text for pipeline.ir and the manifest. */
export function methodPassStep(pass: MethodPass<never>, use: MethodUse, origin: string): GraphPassStep {
  const typed = pass as unknown as MethodPass<unknown>;
  const extra = Object.fromEntries(Object.entries(pass.extra ?? {}).map(([key, e]) => [key, e.lowered]));
  const options = typed.options(use.params, extra);
  return typedPassStep(pass.name, () => typed.create(options), { ...paramText(use.params), ...textOf(extra) }, origin, use.lossy, pass.onAttention);
}

/** A pass its caller makes with typed options; `text` is how they read in a `--passes` pipeline. */
export function typedPassStep(name: string, create: () => Pass, text: Record<string, string>, origin: string, lossy: boolean, onAttention?: boolean): GraphPassStep {
  const step: GraphPassStep = { pass: name, make: () => ({ pass: create(), options: text, step: { name, options: text } }), options: text, origin, lossy };
  if (onAttention) step.onAttention = true;
  return step;
}

/** A registered support pass (passes/index.ts) with options of its declared types. */
export function supportPassStep(registry: PassRegistry, pass: string, options: Readonly<Record<string, OptionValue>>, origin: string, lossy: boolean, onAttention?: boolean): GraphPassStep {
  const step: GraphPassStep = { pass, make: () => registry.make(pass, options), options: textOf(options), origin, lossy };
  if (onAttention) step.onAttention = true;
  return step;
}

function textOf(options: Readonly<Record<string, OptionValue>>): Record<string, string> {
  return Object.fromEntries(Object.entries(options).map(([k, v]) => [k, String(v)]));
}
