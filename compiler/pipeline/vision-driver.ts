import { IndentationText, Project, QuoteKind, VariableDeclarationKind } from "ts-morph";
import type { MethodUse } from "../../dsl/method.ts";
import type { PruneConfig } from "../../runtime/index.ts";
import type { DriverLayout } from "./driver.ts";
import type { EncodeNode, GenerateNode, PipelineIR } from "./ir.ts";
import { runtimeSampling } from "./runtime-options.ts";

/** `prune:` as the runtime's PruneConfig. */
export function runtimePrune(use: MethodUse): PruneConfig {
  if (use.method === "none") return { method: "none" };
  const keep = use.params["keep"] as number | { percent: number };
  const budget = typeof keep === "number" ? { count: keep } : keep;
  if (use.method === "globalcom2") return { method: "globalcom2", keep: budget, grid: use.params["grid"] as number };
  return { method: use.method as "divprune" | "todre", keep: budget };
}

/**
 * driver.ts of a pipeline whose generate stage reads an encode stage: `createPipeline(options)`
 * opens the vision encoder, the decoder (and its token embedder) and the tokenizer;
 * `generate(prompt, { image })` encodes the image, prunes its visual tokens as the encode stage
 * says and streams the answer's token events, ending with one carrying stats. It imports only
 * the runtime (and node:url).
 */
export function generateVisionDriver(ir: PipelineIR, stage: GenerateNode, encoder: EncodeNode, layout: DriverLayout): string {
  const project = new Project({ useInMemoryFileSystem: true, manipulationSettings: { indentationText: IndentationText.TwoSpaces, quoteKind: QuoteKind.Double } });
  const file = project.createSourceFile("driver.ts");
  const tokenizer = ir.tokenizers.find((t) => t.name === stage.tokenizer);
  const tokenizerFile = tokenizer?.kind === "hf" ? layout.tokenizerFiles[stage.tokenizer] : undefined;
  const sampling = runtimeSampling(stage.sampling.use);
  file.addImportDeclaration({ moduleSpecifier: "node:url", namedImports: ["fileURLToPath"] });
  file.addImportDeclaration({
    moduleSpecifier: layout.runtimeImport,
    namedImports: ["RuntimeError", "VisionLanguageModel", ...["Device", "PruneConfig", "RgbImage", "SamplingConfig", "VisionGenerationEvent"].map((name) => ({ name, isTypeOnly: true }))],
  });
  file.addInterface({
    name: "PipelineOptions",
    isExported: true,
    properties: [
      { name: "device", type: "Device", hasQuestionToken: true, docs: [`Where the models run; the pipeline says \`${stage.device}\`.`] },
      { name: "threads", type: "number", hasQuestionToken: true, docs: ["onnxruntime intra-op threads."] },
    ],
  });
  file.addInterface({
    name: "GenerateOptions",
    isExported: true,
    properties: [
      { name: "image", type: "string | RgbImage", hasQuestionToken: true, docs: ["The image the prompt asks about: a PNG or JPEG path, or decoded pixels. Required."] },
      { name: "maxTokens", type: "number", hasQuestionToken: true, docs: [`Most tokens to generate; the pipeline says ${stage.maxTokens}.`] },
      { name: "stop", type: "readonly string[]", hasQuestionToken: true, docs: ["Stop strings, replacing the pipeline's."] },
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
          { name: "prompt", type: tokenizerFile ? "string | readonly number[]" : "readonly number[]" },
          { name: "options", type: "GenerateOptions", hasQuestionToken: true },
        ],
        returnType: "AsyncGenerator<VisionGenerationEvent>",
        docs: ["Token events of the answer, then one `end` event with all tokens, the text and stats (the vision encoder's and pruning's included)."],
      },
      { name: "close", returnType: "Promise<void>", docs: ["Releases the models' sessions."] },
    ],
  });
  file.addVariableStatement({
    declarationKind: VariableDeclarationKind.Const,
    isExported: true,
    declarations: [
      {
        name: "settings",
        initializer: `{ device: ${JSON.stringify(stage.device)}, maxTokens: ${stage.maxTokens}, stop: ${JSON.stringify(stage.stop)}, sampling: ${sampling ? JSON.stringify(sampling) : "undefined"}, prune: ${JSON.stringify(runtimePrune(encoder.prune.use))} } as const satisfies { device: Device; maxTokens: number; stop: readonly string[]; sampling: SamplingConfig | undefined; prune: PruneConfig }`,
      },
    ],
    docs: ["The settings compiled from the pipeline."],
  });
  const path = (p: string) => `file(${JSON.stringify(`./${p}`)})`;
  file.addFunction({
    name: "createPipeline",
    isExported: true,
    isAsync: true,
    parameters: [{ name: "options", type: "PipelineOptions", initializer: "{}" }],
    returnType: "Promise<Pipeline>",
    statements: [
      "const file = (path: string) => fileURLToPath(new URL(path, import.meta.url));",
      "const session = { device: options.device ?? settings.device, threads: options.threads };",
      `const model = await VisionLanguageModel.open({ visionEncoder: ${path(layout.modelFiles[encoder.model]!)}, decoder: ${path(layout.modelFiles[stage.model]!)}${tokenizerFile ? `, tokenizer: ${path(tokenizerFile)}` : ""} }, session);`,
      `return {
        generate(prompt, generateOptions = {}) {
          if (generateOptions.image === undefined) throw new RuntimeError("no-image", "pipeline '${ir.name}' answers about an image: pass one (--image FILE)");
          return model.stream(generateOptions.image, prompt, {
            maxTokens: generateOptions.maxTokens ?? settings.maxTokens,
            stopStrings: generateOptions.stop ?? settings.stop,
            sampling: settings.sampling,
            prune: settings.prune,
            signal: generateOptions.signal,
          });
        },
        async close() {
          await model.release();
        },
      };`,
    ],
  });
  file.insertStatements(0, `// Generated by pipec from ${layout.sourceName}: recompile instead of editing.\n// Pipeline '${ir.name}', stages '${encoder.name}' -> '${stage.name}'.\n`);
  file.formatText({ indentSize: 2, convertTabsToSpaces: true });
  return file.getFullText();
}
