import type { OptionalKind, PropertySignatureStructure, SourceFile } from "ts-morph";
import type { GenerateNode } from "./ir.ts";

type Property = OptionalKind<PropertySignatureStructure>;

/** What a kind of driver.ts adds to the interfaces every driver exports. */
export interface DriverKind {
  hasTokenizer: boolean;
  /** More than one model session (a vision encoder beside the decoder). */
  severalModels: boolean;
  /** PipelineOptions after device, threads and onNotice. */
  pipelineOptions?: Property[];
  /** GenerateOptions before maxTokens, stop, sampling and signal. */
  generateOptions?: Property[];
  /** The runtime's event type `generate` yields, and what its events are. */
  event: string;
  eventDocs: string;
}

/**
 * PipelineOptions, GenerateOptions and Pipeline, the same for every driver so that `pipec run`'s
 * flags (device, threads, the device notice, max tokens, stop strings, sampling, Ctrl-C) reach
 * every kind of pipeline.
 */
export function addDriverInterfaces(file: SourceFile, stage: GenerateNode, kind: DriverKind): void {
  file.addInterface({
    name: "PipelineOptions",
    isExported: true,
    properties: [
      { name: "device", type: "Device", hasQuestionToken: true, docs: [`Where the ${kind.severalModels ? "models run" : "model runs"}; the pipeline says \`${stage.device}\`.`] },
      { name: "threads", type: "number", hasQuestionToken: true, docs: ["onnxruntime intra-op threads."] },
      { name: "onNotice", type: "(line: string) => void", hasQuestionToken: true, docs: ["Receives the line saying which device `auto` fell back to."] },
      ...(kind.pipelineOptions ?? []),
    ],
  });
  file.addInterface({
    name: "GenerateOptions",
    isExported: true,
    properties: [
      ...(kind.generateOptions ?? []),
      { name: "maxTokens", type: "number", hasQuestionToken: true, docs: [`Most tokens to generate; the pipeline says ${stage.maxTokens}.`] },
      { name: "stop", type: "readonly string[]", hasQuestionToken: true, docs: ["Stop strings, replacing the pipeline's."] },
      { name: "sampling", type: "SamplingConfig", hasQuestionToken: true, docs: ["Sampling, replacing the pipeline's."] },
      { name: "signal", type: "AbortSignal", hasQuestionToken: true },
    ],
  });
  file.addInterface({
    name: "Pipeline",
    isExported: true,
    methods: [
      {
        name: "generate",
        parameters: [
          { name: "prompt", type: kind.hasTokenizer ? "string | readonly number[]" : "readonly number[]" },
          { name: "options", type: "GenerateOptions", hasQuestionToken: true },
        ],
        returnType: `AsyncGenerator<${kind.event}>`,
        docs: [kind.eventDocs],
      },
      { name: "close", returnType: "Promise<void>", docs: [kind.severalModels ? "Releases the models' sessions." : "Releases the model's session."] },
    ],
  });
}
