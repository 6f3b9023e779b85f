import type CodeBlockWriter from "code-block-writer";
import { driverWriter, sourceLiteral, writeDriverHead, writeDriverInterfaces, writeSettingsAndFactory } from "./driver-writer.ts";
import type { GenerateNode, PipelineIR } from "./ir.ts";
import { runtimeKvPolicies, runtimeSampling, runtimeSpeculation, runtimeStreaming } from "./runtime-options.ts";
import { generateVisionDriver } from "./vision-driver.ts";

export interface DriverLayout {
  /** Module specifier of the runtime: `pipec/runtime`, or a relative path to runtime/index.ts. */
  runtimeImport: string;
  /** Paths inside the output folder, by model and tokenizer name. */
  modelFiles: Record<string, string>;
  tokenizerFiles: Record<string, string>;
  /** The .pipe's name, for the header. */
  sourceName: string;
}

/**
 * Generates driver.ts: a typed module exporting `createPipeline(options)`, whose `generate(prompt)`
 * streams token events (text included when there is a tokenizer) and ends with one carrying stats.
 * It imports only the runtime (and node:url, to find its files beside itself).
 */
export function generateDriver(ir: PipelineIR, layout: DriverLayout): string {
  const stage = ir.stages.find((s) => s.kind === "generate");
  if (!stage) throw new Error("a pipeline IR without a generate stage reached the driver generator");
  const encoder = ir.encoders?.find((e) => e.name === stage.input);
  if (encoder) return generateVisionDriver(ir, stage, encoder, layout);
  const tokenizer = ir.tokenizers.find((t) => t.name === stage.tokenizer);
  const hasTokenizer = tokenizer?.kind === "hf";
  const w = driverWriter();
  writeDriverHead(w, layout.sourceName, `Pipeline '${ir.name}', stage '${stage.name}'.`, layout.runtimeImport, [
    "DecoderModel",
    "Generator",
    ...(hasTokenizer ? ["loadTokenizer"] : []),
    ...(stage.speculate.use.method !== "none" ? ["WarmState"] : []),
    "type Device",
    "type GenerationEvent",
    "type SamplingConfig",
  ], stageKvPolicies(stage).map((p) => ({ path: p.module, names: [p.export] })));
  writeDriverInterfaces(w, stage, {
    hasTokenizer,
    severalModels: false,
    pipelineOptions:
      stage.speculate.use.method !== "none"
        ? [{ name: "resetWarmState", type: "boolean", doc: "Drop what speculation measured and learned in earlier processes (warm-state.json beside this file) and measure again." }]
        : [],
    event: "GenerationEvent",
    eventDocs: "Token events as they are generated, then one `end` event with all tokens, the text and stats.",
  });
  writeSettingsAndFactory(w, "The generation settings compiled from the pipeline.", settingsLiteral(stage), body(stage, layout, hasTokenizer, ir.models.find((m) => m.name === stage.model)?.facts.maxPositions));
  return w.toString();
}

function settingsLiteral(stage: GenerateNode): (w: CodeBlockWriter) => void {
  const sampling = runtimeSampling(stage.sampling.use);
  return (w) => {
    w.inlineBlock(() => {
      w.writeLine(`device: ${JSON.stringify(stage.device)},`);
      w.writeLine(`maxTokens: ${stage.maxTokens},`);
      w.writeLine(`stop: ${sourceLiteral(stage.stop)},`);
      w.writeLine(`sampling: ${sampling ? sourceLiteral(sampling) : "undefined"},`);
    });
    w.write(" as const satisfies { device: Device; maxTokens: number; stop: readonly string[]; sampling: SamplingConfig | undefined }");
  };
}

/** The KV policies of the stage's placed requests (an optional request the model could not take gets none). */
function stageKvPolicies(stage: GenerateNode) {
  return runtimeKvPolicies([stage.kv, stage.attention, stage.speculate, stage.sampling].filter((l) => l.level !== "none").map((l) => l.use));
}

/** `maxPositions`, when the compiler read it from the model, spares the runtime a config.json it may not have. */
function body(stage: GenerateNode, layout: DriverLayout, hasTokenizer: boolean, maxPositions: number | undefined): (w: CodeBlockWriter) => void {
  const modelFile = layout.modelFiles[stage.model]!;
  // Runtime settings follow what was placed: an optional request the model could not take (level none) gets none.
  const speculation = stage.speculate.level !== "none" ? runtimeSpeculation(stage.speculate.use) : undefined;
  const draft = speculation && "model" in speculation ? layout.modelFiles[speculation.model] : undefined;
  // The draft model (of draft, dyspec or spectr) is opened by the driver and passed in place of its name.
  const speculate = speculation && sourceLiteral(speculation, { replace: { model: "draftModel" } });
  // The runtime evicts only where the graph's streaming-llm attends to the same rows.
  const streaming = stage.kv.level === "graph" ? runtimeStreaming(stage.kv.use) : undefined;
  const kvPolicies = stageKvPolicies(stage).map((p) => `() => new ${p.export}(${sourceLiteral(p.options)})`);
  return (w) => {
    w.writeLine(`const file = (path: string) => fileURLToPath(new URL(path, import.meta.url));`);
    w.writeLine(`const session = { device: options.device ?? settings.device, threads: options.threads, onNotice: options.onNotice${maxPositions === undefined ? "" : `, maxPositions: ${maxPositions}`} };`);
    w.writeLine(`const model = await DecoderModel.open(file(${JSON.stringify(`./${modelFile}`)}), session);`);
    if (draft) w.writeLine(`const draftModel = await DecoderModel.open(file(${JSON.stringify(`./${draft}`)}), session);`);
    if (speculate) {
      // What speculation measures and learns persists beside the pipeline: a fresh process starts warm, and no request measures.
      w.writeLine(`const speculate = ${speculate} as const;`);
      const warmDraft = draft ? `draft: { model: draftModel, path: file(${JSON.stringify(`./${draft}`)}) }, ` : "";
      w.writeLine(
        `const warm = await WarmState.open(file("./warm-state.json"), { model, path: file(${JSON.stringify(`./${modelFile}`)}) }, { ${warmDraft}speculate, argmaxOnly: settings.sampling === undefined, device: session.device, threads: session.threads, reset: options.resetWarmState });`,
      );
    }
    if (hasTokenizer) w.writeLine(`const generator = new Generator(model, loadTokenizer(file(${JSON.stringify(`./${layout.tokenizerFiles[stage.tokenizer]!}`)})));`);
    else w.writeLine("const generator = new Generator(model);");
    w.write("return ").inlineBlock(() => {
      w.write("generate(prompt, generateOptions = {}) ").inlineBlock(() => {
        w.write(speculate ? "return warm.after(generator.stream(prompt, " : "return generator.stream(prompt, ").inlineBlock(() => {
          w.writeLine("maxTokens: generateOptions.maxTokens ?? settings.maxTokens,");
          w.writeLine("stopStrings: generateOptions.stop ?? settings.stop,");
          w.writeLine("sampling: generateOptions.sampling ?? settings.sampling,");
          if (speculate) w.writeLine("speculate,");
          if (streaming) w.writeLine(`streaming: ${sourceLiteral(streaming)},`);
          if (kvPolicies.length) w.writeLine(`kvPolicies: [${kvPolicies.join(", ")}],`);
          w.writeLine("signal: generateOptions.signal,");
        });
        w.write(speculate ? "));" : ");").newLine();
      });
      w.write(",").newLine();
      w.write("async close() ").inlineBlock(() => {
        w.writeLine("await model.release();");
        if (draft) w.writeLine("await draftModel.release();");
      });
      w.write(",").newLine();
    });
    w.write(";");
  };
}
