import type { CheckedStage } from "../../dsl/check.ts";
import type { Diagnostics } from "../../dsl/diagnostics.ts";
import type { MethodUse } from "../../dsl/method.ts";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import type { EncodeNode, GenerateNode, Lowered, ModelNode } from "./ir.ts";
import { visionCompanions } from "./vision-files.ts";
import type { PassRegistry } from "../../graph/pass-manager/registry.ts";
import { methodOf } from "../methods/index.ts";
import { supportPassStep } from "./pass-steps.ts";

/**
 * An encode stage: a vision encoder (with its projector) whose visual tokens, after the stage's
 * `prune`, replace the image token in the prompt of the generate stage that reads it.
 */
export function lowerEncode(s: CheckedStage, model: ModelNode | undefined, registry: PassRegistry, diags: Diagnostics, lowerMethod: (use: MethodUse) => Lowered | undefined): EncodeNode | undefined {
  if (model && !model.facts.vision) {
    diags.error(`model '${model.name}' is not a vision encoder: an encode stage needs pixel_values in and visual tokens [B, Nv, C] out`, s.span);
    return undefined;
  }
  if (model && !companionsPresent(model, s, diags)) return undefined;
  const prune = lowerMethod(s.methods["prune"]!);
  if (!model || !prune) return undefined;
  // A pass the pruning needs on the encoder (its method table entry says which), where this build has it.
  const lowering = methodOf(prune.use).lowering;
  const support = lowering.level === "runtime" ? lowering.support : undefined;
  if (support && registry.names.includes(support.name)) {
    model.passes.push(supportPassStep(registry, support.name, support.options(prune.use.params), `${s.name}.prune: ${prune.use.method}`, false, support.onAttention));
  }
  return { kind: "encode", name: s.name, model: model.name, prune, device: s.device };
}

/**
 * The edge from an encode stage into a generate stage: the decoder must take inputs_embeds as
 * wide as the visual tokens. A text-only generate stage needs a decoder, not an encoder.
 */
export function checkImageInput(s: CheckedStage, node: GenerateNode, stages: readonly CheckedStage[], models: ReadonlyMap<string, ModelNode>, diags: Diagnostics): void {
  const decoder = models.get(node.model)!;
  const source = stages.find((x) => x.name === node.input);
  if (!source || source.kind !== "encode") {
    if (decoder.facts.vision) diags.error(`model '${decoder.name}' is a vision encoder: a generate stage needs a decoder (use it in an encode stage)`, s.span);
    return;
  }
  const encoder = models.get(source.refs["model"]!);
  const width = encoder?.facts.vision?.dim;
  if (width === undefined) return;
  if (decoder.facts.embedsDim === undefined) diags.error(`stage '${s.name}' reads visual tokens from '${source.name}', but model '${decoder.name}' takes input_ids, not inputs_embeds`, s.span);
  else if (decoder.facts.embedsDim !== width) {
    diags.error(`shape mismatch: stage '${source.name}' gives visual tokens [B, Nv, ${width}] but model '${decoder.name}' takes inputs_embeds [B, S, ${decoder.facts.embedsDim}]`, s.span);
  } else companionsPresent(decoder, s, diags);
}

function companionsPresent(model: ModelNode, s: CheckedStage, diags: Diagnostics): boolean {
  const missing = visionCompanions(model.facts).filter((name) => !existsSync(join(dirname(model.path), name)));
  for (const name of missing) diags.error(`model '${model.name}' needs ${name} beside it (${join(dirname(model.path), name)})`, s.span);
  return missing.length === 0;
}
