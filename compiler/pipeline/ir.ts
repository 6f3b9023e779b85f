import type { Device } from "../../dsl/check.ts";
import type { ModelFacts } from "../../dsl/facts.ts";
import type { MethodUse } from "../../dsl/method.ts";
import type { PipelinePass } from "../../graph/pass-manager/registry.ts";

/**
 * The pipeline IR: the .pipe with everything explicit (defaults, absolute paths, model facts)
 * and every optimisation turned into the steps that implement it.
 */
export interface PipelineIR {
  name: string;
  /** The .pipe file's absolute path. */
  source: string;
  device: Device;
  models: ModelNode[];
  tokenizers: TokenizerNode[];
  /** In dataflow order. */
  stages: StageNode[];
  /** Vision encoder stages, each feeding the generate stage whose `input` names it (absent in text-only pipelines). */
  encoders?: EncodeNode[];
}

export interface ModelNode {
  name: string;
  /** Absolute path of the input .onnx. */
  path: string;
  facts: ModelFacts;
  /** Graph passes run on this model, in order. */
  passes: GraphPassStep[];
}

/** A graph pass and the options it is run with (pass-steps.ts makes them). */
export interface GraphPassStep {
  pass: string;
  /** Makes the pass with the options lowering chose, as typed values: no text in between. */
  make(): PipelinePass;
  /** Those options as `--passes` text (`pipec opt --passes` reads them back): what pipeline.ir and the manifest show. */
  options: Record<string, string>;
  /** The request it implements: `attention: tidal`. */
  origin: string;
  lossy: boolean;
  /** Runs on canonical attention nodes (between lift-attention and lower-attention). */
  onAttention?: boolean;
}

export type TokenizerNode = { name: string; kind: "hf"; path: string } | { name: string; kind: "ids" };

export type StageNode = GenerateNode;

/** An autoregressive decode loop: tokenize, prefill, then one model call (or a speculation step) per token. */
export interface GenerateNode {
  kind: "generate";
  name: string;
  model: string;
  tokenizer: string;
  /** The stage whose output it reads, if any. */
  input?: string;
  kv: Lowered;
  attention: Lowered;
  speculate: Lowered;
  sampling: Lowered;
  maxTokens: number;
  stop: string[];
  device: Device;
}

/** A vision encoder and projector: image in, visual tokens (after `prune`) out to the generate stage reading it. */
export interface EncodeNode {
  kind: "encode";
  name: string;
  model: string;
  prune: Lowered;
  device: Device;
}

/** A method request and how it is carried out. */
export interface Lowered {
  use: MethodUse;
  /** graph: by passes on a model; runtime: by the runtime from the driver's options; none: nothing to do. */
  level: "graph" | "runtime" | "none";
  /** An optional request (`?`) the model could not take: nothing carries it out (compile warned). */
  unplaced?: true;
}

/** Every lossy request of the pipeline, as `stage.slot: method` lines for the dump and the manifest. */
export function lossyRequests(ir: PipelineIR): string[] {
  const encoders = (ir.encoders ?? []).filter((e) => e.prune.use.lossy).map((e) => `${e.name}.prune: ${e.prune.use.method}`);
  return [...encoders, ...ir.stages.flatMap((s) => [s.kv, s.attention, s.speculate, s.sampling].filter((l) => l.use.lossy && !l.unplaced).map((l) => `${s.name}.${l.use.slot}: ${l.use.method}`))];
}
