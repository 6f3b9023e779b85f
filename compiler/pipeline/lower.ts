import type { CheckedPipeline, CheckedStage } from "../../dsl/check.ts";
import type { Diagnostics } from "../../dsl/diagnostics.ts";
import type { MethodUse } from "../../dsl/method.ts";
import { isPipecError } from "../../graph/errors.ts";
import type { PassRegistry } from "../../graph/pass-manager/registry.ts";
import { printParam } from "../../dsl/print.ts";
import { IMPLEMENTATIONS, LIFT_ATTENTION, LOGITS_TOPK, LOWER_ATTENTION, SELF_DRAFT, speculationIds } from "./implementations.ts";
import type { EncodeNode, GenerateNode, GraphPassStep, Lowered, ModelNode, PipelineIR, TokenizerNode } from "./ir.ts";
import { composeSparseWithSpeculation } from "./method-compatibility.ts";
import { checkImageInput, lowerEncode } from "./vision-stages.ts";

/**
 * Turns a checked pipeline into the pipeline IR: each requested method becomes graph passes on
 * its stage's model or a runtime setting. Anything this build cannot do is an error at the place
 * it was requested; nothing is dropped.
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
    if (use.method === "self" && slot === "speculate" && model) use = selfDraftAsDraftModel(use, model, s, models);
    return lowerMethod(use, s, model, registry, diags);
  };
  const [kv, attention, speculate, sampling] = [lower("kv"), lower("attention"), lower("speculate"), lower("sampling")];
  if (!kv || !attention || !speculate || !sampling || !model) return undefined;
  if (!composeSparseWithSpeculation(s, model, diags)) return undefined;
  const ids = speculationIds(s.methods["speculate"]!, s.methods["sampling"]!);
  if (ids && registry.names.includes(LOGITS_TOPK)) model.passes.push({ pass: LOGITS_TOPK, options: ids, origin: `${s.name}.speculate: ${s.methods["speculate"]!.method}`, lossy: false });
  const node: GenerateNode = { kind: "generate", name: s.name, model: model.name, tokenizer: s.refs["tokenizer"]!, kv, attention, speculate, sampling, maxTokens: s.maxTokens, stop: s.stop, device: s.device };
  if (s.refs["input"] !== undefined) node.input = s.refs["input"];
  return node;
}

/** Makes the pass once, so options it refuses are reported where they were written (by check too, not only compile). */
function passAccepts(step: GraphPassStep, registry: PassRegistry, use: MethodUse, diags: Diagnostics): boolean {
  try {
    registry.resolve([{ name: step.pass, options: step.options }]);
    return true;
  } catch (e) {
    if (!isPipecError(e)) throw e;
    diags.error(`${use.slot}: ${e.message.replace(/^pass '[^']*': /, "")}`, use.span);
    return false;
  }
}

/**
 * `speculate: self(skip, k)` is draft-model speculation whose draft the self-draft pass derives
 * from the stage's model: a second model (the same source, the skipped layers bypassed) joins
 * the pipeline, and the request becomes `draft(model: <it>, k)`.
 */
function selfDraftAsDraftModel(use: MethodUse, target: ModelNode, s: CheckedStage, models: Map<string, ModelNode>): MethodUse {
  const name = `${target.name}_self_draft`;
  const origin = `${s.name}.speculate: self`;
  models.set(name, { ...target, name, passes: [{ pass: SELF_DRAFT, options: { skip: printParam(use.params["skip"]!) }, origin, lossy: false, onAttention: true }] });
  return { ...use, method: "draft", params: { model: name, k: use.params["k"]! }, given: use.given.filter((p) => p !== "skip") };
}

/** Passes on canonical attention run together between one lift-attention and one lower-attention. */
export function bracketAttentionPasses(passes: GraphPassStep[], registry: PassRegistry): GraphPassStep[] {
  const onAttention = passes.filter((p) => p.onAttention);
  if (onAttention.length === 0) return passes;
  const bracket = (pass: string): GraphPassStep => ({ pass, options: {}, origin: onAttention.map((p) => p.origin).join(", "), lossy: false });
  for (const name of [LIFT_ATTENTION, LOWER_ATTENTION]) if (!registry.names.includes(name)) throw new Error(`pass '${name}' is not registered, but attention passes need it`);
  return [bracket(LIFT_ATTENTION), ...onAttention, bracket(LOWER_ATTENTION), ...passes.filter((p) => !p.onAttention)];
}

function lowerMethod(use: MethodUse, s: CheckedStage, model: ModelNode | undefined, registry: PassRegistry, diags: Diagnostics): Lowered | undefined {
  const impl = IMPLEMENTATIONS[`${use.slot}.${use.method}`];
  if (!impl || (impl.level === "graph" && !registry.names.includes(impl.pass))) {
    diags.error(`${use.slot}: ${use.method} is not implemented in this build`, use.span ?? s.span);
    return undefined;
  }
  if (impl.level === "graph" && model) {
    const step: GraphPassStep = { pass: impl.pass, options: impl.options(use, model.facts), origin: `${s.name}.${use.slot}: ${use.method}`, lossy: use.lossy };
    if (impl.onAttention) step.onAttention = true;
    if (!passAccepts(step, registry, use, diags)) return undefined;
    model.passes.push(step);
  }
  return { use, level: impl.level };
}
