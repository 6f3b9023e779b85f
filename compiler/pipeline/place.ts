import type { Diagnostic } from "../../dsl/diagnostics.ts";
import { isPipecError } from "../../graph/errors.ts";
import type { Model } from "../../graph/ir/model.ts";
import { loadModel } from "../../graph/onnx/index.ts";
import { runPipeline, type PassRecord } from "../../graph/pass-manager/manager.ts";
import type { PassRegistry } from "../../graph/pass-manager/registry.ts";
import { LIFT_ATTENTION, LOWER_ATTENTION } from "../methods/support-passes.ts";
import type { GenerateNode, GraphPassStep, Lowered, ModelNode, PipelineIR } from "./ir.ts";
import { bracketAttentionPasses } from "./lower.ts";

/** A model after the passes placed on it, and what each pass did. */
export interface PlacedModel {
  node: ModelNode;
  model: Model;
  runs: { step: GraphPassStep; record: PassRecord }[];
}

export interface Placement {
  /** The IR as placed: an optional request that could not be placed has no passes and `unplaced` set. */
  ir: PipelineIR;
  models: PlacedModel[];
  /** Errors for required requests that could not be placed, warnings for optional ones. */
  diagnostics: Diagnostic[];
}

/** A request that the model could not take, and why (in words about the model, not the passes). */
interface Unplaced {
  /** `decode.kv`: the stage and slot. */
  request: string;
  /** `kv: streaming`, as the user asked. */
  what: string;
  reason: string;
}

/**
 * Runs every model's passes (nothing is written) and checks that each request was carried out on
 * every layer it concerns: a pass that refused the model, changed nothing, or attention pipec does
 * not recognise in some layer make the request unplaceable. A required request is then an error at
 * its line; an optional one (`kv: streaming?`) a warning, and it is dropped from the IR, so the
 * passes run again without it and the driver gets no runtime settings for it. `load` reads a
 * model file (a compile hands over the model its checks already read).
 */
export function placeRequests(ir: PipelineIR, registry: PassRegistry, load: (path: string) => Model = loadModel): Placement {
  const diagnostics: Diagnostic[] = [];
  const placed: PlacedModel[] = [];
  let current = ir;
  // Each round drops at least one request, so this ends.
  for (;;) {
    placed.length = 0;
    const unplaced: Unplaced[] = [];
    for (const node of current.models) {
      const result = placeModel(node, current, load);
      if ("unplaced" in result) unplaced.push(...result.unplaced);
      else placed.push(result);
    }
    const distinct = [...new Map(unplaced.map((u) => [u.request, u])).values()];
    if (distinct.length === 0) return { ir: current, models: placed, diagnostics };
    const optional = distinct.filter((u) => requestOf(current, u.request)?.use.optional);
    for (const u of distinct) diagnostics.push(unplacedDiagnostic(current, u, optional.includes(u)));
    if (optional.length < distinct.length) return { ir: current, models: [], diagnostics };
    current = withoutRequests(current, new Set(optional.map((u) => u.request)), registry);
  }
}

/** `decode.kv` of a step's origin `decode.kv: streaming`. */
function requestKey(origin: string): string {
  return origin.slice(0, origin.indexOf(":"));
}

/** lift-attention and lower-attention serve every attention request on the model: no request of their own. */
function isBracket(step: GraphPassStep): boolean {
  return step.pass === LIFT_ATTENTION || step.pass === LOWER_ATTENTION;
}

function unplaced(step: GraphPassStep, reason: string): Unplaced {
  return { request: requestKey(step.origin), what: step.origin.slice(step.origin.indexOf(".") + 1), reason };
}

function requestOf(ir: PipelineIR, request: string): Lowered | undefined {
  const [stage, slot] = request.split(".");
  const s = ir.stages.find((x) => x.name === stage);
  return s && ([s.kv, s.attention, s.speculate, s.sampling].find((l) => l.use.slot === slot) ?? undefined);
}

function placeModel(node: ModelNode, ir: PipelineIR, load: (path: string) => Model): PlacedModel | { unplaced: Unplaced[] } {
  const model = load(node.path);
  const steps = node.passes;
  const passes = steps.map((step) => step.make());
  const runs: PlacedModel["runs"] = [];
  // A pass's last note says why it changed nothing, in its words about the model.
  const notes = new Map<string, string>();
  const instr = {
    emit: (line: string) => {
      const m = /^note: ([^:]+): (.*)$/s.exec(line.trimEnd());
      if (m) notes.set(m[1]!, m[2]!);
    },
  };
  const onAttention = steps.filter((s) => s.onAttention);
  const userModel = (request: string) => stageOf(ir, request)?.model ?? node.name;
  let from = 0;
  if (steps[0]?.pass === LIFT_ATTENTION && onAttention.length) {
    const [record] = runPipeline(model, passes.slice(0, 1), instr);
    runs.push({ step: steps[0], record: record! });
    const lifted = record!.stats["layers"] ?? 0;
    if (lifted < node.facts.layers) {
      const reason = (request: string) => (lifted === 0 ? `pipec recognises no attention layer in model '${userModel(request)}'` : `pipec recognises attention in ${lifted} of model '${userModel(request)}''s ${node.facts.layers} layers, so the others would stay dense`);
      return { unplaced: onAttention.map((s) => unplaced(s, reason(requestKey(s.origin)))) };
    }
    from = 1;
  }
  let records: PassRecord[];
  try {
    records = runPipeline(model, passes.slice(from), instr);
  } catch (e) {
    const step = isPipecError(e) && steps.slice(from).find((p) => e.message.startsWith(`pass '${p.pass}': `));
    if (!step || isBracket(step)) throw e;
    return { unplaced: [unplaced(step, e.message.replace(/^pass '[^']*': /, ""))] };
  }
  records.forEach((record, i) => runs.push({ step: steps[from + i]!, record }));
  const idle = runs.filter(({ step, record }) => step.onAttention && !record.changed);
  const optional = (step: GraphPassStep) => requestOf(ir, requestKey(step.origin))?.use.optional === true;
  const problem = (step: GraphPassStep): Unplaced => {
    const request = requestKey(step.origin);
    const earlier = runs.slice(0, runs.findIndex((r) => r.step === step)).find((r) => r.step.onAttention && r.record.changed && !isBracket(r.step) && requestKey(r.step.origin) !== request);
    // Of two requests that take the same layers, an optional one gives way to a required one.
    if (earlier && optional(earlier.step) && !optional(step)) return unplaced(earlier.step, `${unplaced(step, "").what} rewrites the same attention layers of model '${userModel(request)}', and the two do not combine`);
    if (earlier) return unplaced(step, `${unplaced(earlier.step, "").what} already rewrote the attention layers of model '${userModel(request)}' it would rewrite, and the two do not combine`);
    return unplaced(step, notes.get(step.pass) ?? `it found nothing to rewrite in model '${userModel(request)}'`);
  };
  if (idle.length) return { unplaced: idle.map(({ step }) => problem(step)) };
  return { node, model, runs };
}

function stageOf(ir: PipelineIR, request: string): GenerateNode | undefined {
  return ir.stages.find((s) => s.name === request.split(".")[0]);
}

function unplacedDiagnostic(ir: PipelineIR, u: Unplaced, optional: boolean): Diagnostic {
  const lowered = requestOf(ir, u.request);
  const message = optional ? `${u.what} is skipped, it cannot be applied: ${u.reason} (it is optional)` : `${u.what} cannot be applied: ${u.reason}`;
  const span = lowered?.use.span;
  return { severity: optional ? "warning" : "error", message, ...(span && { span }) };
}

/** The IR without the given requests: their passes gone (attention brackets rebuilt), the requests marked unplaced and carried out by nothing. */
function withoutRequests(ir: PipelineIR, requests: Set<string>, registry: PassRegistry): PipelineIR {
  const dropped = (step: GraphPassStep) => requests.has(requestKey(step.origin));
  const stages = ir.stages.map((s) => {
    const mark = (l: Lowered): Lowered => (requests.has(`${s.name}.${l.use.slot}`) ? { ...l, level: "none", unplaced: true } : l);
    return { ...s, kv: mark(s.kv), attention: mark(s.attention), speculate: mark(s.speculate), sampling: mark(s.sampling) };
  });
  // A model that only a dropped request brought in (speculate: self's draft) goes with it.
  const models = ir.models
    .filter((m) => !(m.passes.length > 0 && m.passes.every((p) => isBracket(p) || dropped(p)) && !stages.some((s) => s.model === m.name)))
    .map((m) => ({ ...m, passes: bracketAttentionPasses(m.passes.filter((p) => !isBracket(p) && !dropped(p)), registry) }));
  return { ...ir, stages, models };
}
