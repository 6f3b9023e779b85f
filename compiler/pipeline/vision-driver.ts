import type { MethodUse } from "../../dsl/method.ts";
import type { PruneConfig } from "../../runtime/index.ts";
import { driverWriter, sourceLiteral, writeDriverHead, writeDriverInterfaces, writeSettingsAndFactory } from "./driver-writer.ts";
import type { DriverLayout } from "./driver.ts";
import type { EncodeNode, GenerateNode, PipelineIR } from "./ir.ts";
import { runtimeSampling } from "./runtime-options.ts";
import { methodOf } from "../methods/index.ts";

/** `prune:` as the runtime's PruneConfig. */
export function runtimePrune(use: MethodUse): PruneConfig {
  return methodOf(use).runtime!.prune!(use.params);
}

/**
 * driver.ts of a pipeline whose generate stage reads an encode stage: `createPipeline(options)`
 * opens the vision encoder, the decoder (and its token embedder) and the tokenizer;
 * `generate(prompt, { image })` encodes the image, prunes its visual tokens as the encode stage
 * says and streams the answer's token events, ending with one carrying stats. It imports only
 * the runtime (and node:url).
 */
export function generateVisionDriver(ir: PipelineIR, stage: GenerateNode, encoder: EncodeNode, layout: DriverLayout): string {
  const tokenizer = ir.tokenizers.find((t) => t.name === stage.tokenizer);
  const tokenizerFile = tokenizer?.kind === "hf" ? layout.tokenizerFiles[stage.tokenizer] : undefined;
  const sampling = runtimeSampling(stage.sampling.use);
  const w = driverWriter();
  writeDriverHead(w, layout.sourceName, `Pipeline '${ir.name}', stages '${encoder.name}' -> '${stage.name}'.`, layout.runtimeImport, [
    "RuntimeError",
    "VisionLanguageModel",
    ...["Device", "PruneConfig", "RgbImage", "SamplingConfig", "VisionGenerationEvent"].map((name) => `type ${name}`),
  ]);
  writeDriverInterfaces(w, stage, {
    hasTokenizer: tokenizerFile !== undefined,
    severalModels: true,
    generateOptions: [{ name: "image", type: "string | RgbImage", doc: "The image the prompt asks about: a PNG or JPEG path, or decoded pixels. Required." }],
    event: "VisionGenerationEvent",
    eventDocs: "Token events of the answer, then one `end` event with all tokens, the text and stats (the vision encoder's and pruning's included).",
  });
  const settings = `{ device: ${JSON.stringify(stage.device)}, maxTokens: ${stage.maxTokens}, stop: ${sourceLiteral(stage.stop)}, sampling: ${sampling ? sourceLiteral(sampling, { quoteKeys: true }) : "undefined"}, prune: ${sourceLiteral(runtimePrune(encoder.prune.use), { quoteKeys: true })} } as const satisfies { device: Device; maxTokens: number; stop: readonly string[]; sampling: SamplingConfig | undefined; prune: PruneConfig }`;
  const path = (p: string) => `file(${JSON.stringify(`./${p}`)})`;
  const files = `visionEncoder: ${path(layout.modelFiles[encoder.model]!)}, decoder: ${path(layout.modelFiles[stage.model]!)}${tokenizerFile ? `, tokenizer: ${path(tokenizerFile)}` : ""}`;
  writeSettingsAndFactory(w, "The settings compiled from the pipeline.", (w) => w.write(settings), (w) => {
    w.writeLine("const file = (path: string) => fileURLToPath(new URL(path, import.meta.url));");
    w.writeLine("const session = { device: options.device ?? settings.device, threads: options.threads, onNotice: options.onNotice };");
    w.writeLine(`const model = await VisionLanguageModel.open({ ${files} }, session);`);
    w.write("return ").inlineBlock(() => {
      w.write("generate(prompt, generateOptions = {}) ").inlineBlock(() => {
        w.writeLine(`if (generateOptions.image === undefined) throw new RuntimeError("no-image", "pipeline '${ir.name}' answers about an image: pass one (--image FILE)");`);
        w.write("return model.stream(generateOptions.image, prompt, ").inlineBlock(() => {
          w.writeLine("maxTokens: generateOptions.maxTokens ?? settings.maxTokens,");
          w.writeLine("stopStrings: generateOptions.stop ?? settings.stop,");
          w.writeLine("sampling: generateOptions.sampling ?? settings.sampling,");
          w.writeLine("prune: settings.prune,");
          w.writeLine("signal: generateOptions.signal,");
        });
        w.write(");").newLine();
      });
      w.write(",").newLine();
      w.write("async close() ").inlineBlock(() => w.writeLine("await model.release();"));
      w.write(",").newLine();
    });
    w.write(";");
  });
  return w.toString();
}
