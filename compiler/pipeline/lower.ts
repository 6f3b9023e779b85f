import type { CheckedPipeline, CheckedStage } from "../../dsl/check.ts";
import type { Diagnostics } from "../../dsl/diagnostics.ts";
import type { MethodUse } from "../../dsl/method.ts";
import { isPipecError } from "../../graph/errors.ts";
import type { OptionValue, PassRegistry } from "../../graph/pass-manager/registry.ts";
import { MIN_LOGITS_FOR_IDS } from "../../runtime/ids-or-logits.ts";
import { methodOf } from "../methods/index.ts";
import type { Lowering } from "../methods/method.ts";
import { LIFT_ATTENTION, LOGITS_TOPK, LOWER_ATTENTION } from "../methods/support-passes.ts";
import type { EncodeNode, GenerateNode, GraphPassStep, Lowered, ModelNode, PipelineIR, TokenizerNode } from "./ir.ts";
import { checkSpeculationDecoding, composeSparseWithSpeculation } from "./method-compatibility.ts";
import { methodPassStep, supportPassStep, typedPassStep } from "./pass-steps.ts";
import { checkImageInput, lowerEncode } from "./vision-stages.ts";

/**
 * Turns a checked pipeline into the pipeline IR: each requested method becomes graph passes on
 * its stage's model or a runtime setting, as its method table entry says (compiler/methods/).
 * Anything this build cannot do is an error at the place it was requested; nothing is dropped.
 */
export function lowerPipeline(p: CheckedPipeline, registry: PassRegistry, diags: Diagnostics): PipelineIR | undefined {
  const models = new Map<string, ModelNode>();
  for (const m of p.models) if (m.facts) models.set(m.name, { name: m.name, path: m.path, facts: m.facts, passes: [] });
  const tokenizers: TokenizerNode[] = p.tokenizers.map((t) => (t.kind === "hf" ? { name: t.name, kind: "hf", path: t.path! } : { name: t.name, kind: "ids" }));
  const stages: GenerateNode[] = [];
  const encoders: EncodeNode[] = [];
  for (const s of p.stages) {
    if (s.kind === "encode") {
      const node = lowerEncode(s, models.get(s.refs["model"]!), registry, diags, (use) => lowerMethod(use, s, undefined, registry, diags));
      if (node) encoders.push(node);
      continue;
    }
    const generates = p.stages.filter((x) => x.kind === "generate");
    if (generates.length > 1 && s !== generates[0]) {
      diags.error("not supported yet: a pipeline with more than one generate stage", s.span);
      continue;
    }
    const node = lowerGenerate(s, models.get(s.refs["model"]!), registry, diags, models);
    if (node) stages.push(node);
    if (node) checkImageInput(s, node, p.stages, models, diags);
  }
  if (diags.hasErrors) return undefined;
  for (const m of models.values()) m.passes = bracketAttentionPasses(m.passes, registry);
  return { name: p.name, source: p.file, device: p.device, models: [...models.values()], tokenizers, stages, ...(encoders.length && { encoders }) };
}

function lowerGenerate(s: CheckedStage, model: ModelNode | undefined, registry: PassRegistry, diags: Diagnostics, models: Map<string, ModelNode>): GenerateNode | undefined {
  const prune = s.methods["prune"];
  if (prune && prune.method !== "none") diags.error(`prune: ${prune.method} acts on visual tokens: set it in the encode stage that feeds '${s.name}'`, prune.span ?? s.span);
  const lower = (slot: string): Lowered | undefined => {
    let use = s.methods[slot]!;
    const lowering = methodOf(use).lowering;
    if (!implemented(use, s, registry, diags)) return undefined;
    if (lowering.level === "draft-model" && model) use = asDerivedDraft(use, lowering, model, s, models);
    return lowerMethod(use, s, model, registry, diags);
  };
  const [kv, attention, speculate, sampling] = [lower("kv"), lower("attention"), lower("speculate"), lower("sampling")];
  if (!kv || !attention || !speculate || !sampling || !model) return undefined;
  if (!composeSparseWithSpeculation(s, model, registry, diags) || !checkSpeculationDecoding(s, diags)) return undefined;
  const ids = speculationIds(s.methods["speculate"]!, s.methods["sampling"]!);
  if (ids && registry.names.includes(LOGITS_TOPK)) model.passes.push(supportPassStep(registry, LOGITS_TOPK, ids, `${s.name}.speculate: ${s.methods["speculate"]!.method}`, false));
  const node: GenerateNode = { kind: "generate", name: s.name, model: model.name, tokenizer: s.refs["tokenizer"]!, kv, attention, speculate, sampling, maxTokens: s.maxTokens, stop: s.stop, device: s.device };
  if (s.refs["input"] !== undefined) node.input = s.refs["input"];
  return node;
}

/** The logits-topk options a greedy stage's speculation reads ids from (its method's greedyIds), or undefined. */
function speculationIds(speculate: MethodUse, sampling: MethodUse): Record<string, OptionValue> | undefined {
  const ids = methodOf(speculate).greedyIds;
  // A stage that samples reads the logits.
  if (!ids || methodOf(sampling).runtime?.sampling) return undefined;
  return { ...ids(speculate.params), min_vocab: MIN_LOGITS_FOR_IDS };
}

/** Makes the pass once, so options it refuses are reported where they were written (by check too, not only compile). */
function passAccepts(step: GraphPassStep, use: MethodUse, diags: Diagnostics): boolean {
  try {
    step.make();
    return true;
  } catch (e) {
    if (!isPipecError(e)) throw e;
    diags.error(`${use.slot}: ${e.message.replace(/^pass '[^']*': /, "")}`, use.span);
    return false;
  }
}

/**
 * A speculation whose draft model a pass derives from the stage's model (`speculate: self`): a
 * second model (the same source, with that pass) joins the pipeline, and the request becomes
 * `draft(model: <it>, ...)`.
 */
function asDerivedDraft(use: MethodUse, lowering: Extract<Lowering, { level: "draft-model" }>, target: ModelNode, s: CheckedStage, models: Map<string, ModelNode>): MethodUse {
  const name = `${target.name}_${use.method}_draft`;
  const derive = lowering.derive;
  const step = typedPassStep(derive.name, () => derive.create(use.params), derive.text(use.params), `${s.name}.${use.slot}: ${use.method}`, false, derive.onAttention);
  models.set(name, { ...target, name, passes: [step] });
  const params = lowering.asDraft(use.params, name);
  return { ...use, method: "draft", params, given: use.given.filter((p) => p in params) };
}

/** Passes on canonical attention run together between one lift-attention and one lower-attention. */
export function bracketAttentionPasses(passes: GraphPassStep[], registry: PassRegistry): GraphPassStep[] {
  const onAttention = passes.filter((p) => p.onAttention);
  if (onAttention.length === 0) return passes;
  for (const name of [LIFT_ATTENTION, LOWER_ATTENTION]) if (!registry.names.includes(name)) throw new Error(`pass '${name}' is not registered, but attention passes need it`);
  const bracket = (pass: string): GraphPassStep => supportPassStep(registry, pass, {}, onAttention.map((p) => p.origin).join(", "), false);
  return [bracket(LIFT_ATTENTION), ...onAttention, bracket(LOWER_ATTENTION), ...passes.filter((p) => !p.onAttention)];
}

/** False, with an error at the request, when a pass its lowering needs is not registered in this build. */
function implemented(use: MethodUse, s: CheckedStage, registry: PassRegistry, diags: Diagnostics): boolean {
  const lowering = methodOf(use).lowering;
  const pass = lowering.level === "graph" ? ("pass" in lowering ? lowering.pass.name : lowering.support.name) : lowering.level === "draft-model" ? lowering.derive.name : undefined;
  if (pass === undefined || registry.names.includes(pass)) return true;
  diags.error(`${use.slot}: ${use.method} is not implemented in this build`, use.span ?? s.span);
  return false;
}

function lowerMethod(use: MethodUse, s: CheckedStage, model: ModelNode | undefined, registry: PassRegistry, diags: Diagnostics): Lowered | undefined {
  const lowering = methodOf(use).lowering;
  if (!implemented(use, s, registry, diags)) return undefined;
  if (lowering.level === "graph" && model) {
    const origin = `${s.name}.${use.slot}: ${use.method}`;
    const step = "pass" in lowering ? methodPassStep(lowering.pass, use, origin) : supportPassStep(registry, lowering.support.name, lowering.support.options(use.params), origin, use.lossy, lowering.support.onAttention);
    if (!passAccepts(step, use, diags)) return undefined;
    model.passes.push(step);
  }
  // A derived draft model lowers as `draft` (asDerivedDraft); without the stage's model there is nothing to derive it from.
  return { use, level: lowering.level === "draft-model" ? "runtime" : lowering.level };
}
