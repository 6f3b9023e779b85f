/** The pass manager: registry, textual pipelines, instrumentation. */
export { checkPipeline, PassFailure, runPipeline, type Instrumentation, type PassRecord } from "./manager.ts";
export type { Pass, PassContext, PassResult } from "./pass.ts";
export { formatPipeline, parsePipeline, type PipelineStep } from "./pipeline.ts";
export { PROPERTY_CHECKS, TOPOLOGICALLY_SORTED, VERIFIED } from "./properties.ts";
export { PassRegistry, type OptionSpec, type OptionValue, type PassEntry, type PipelinePass } from "./registry.ts";
