import CodeBlockWriter from "code-block-writer";
import type { GenerateNode } from "./ir.ts";

/** An optional property of an options interface. */
export interface OptionalProperty {
  name: string;
  type: string;
  doc?: string;
}

/** What a kind of driver.ts adds to the interfaces every driver exports. */
export interface DriverKind {
  hasTokenizer: boolean;
  /** More than one model session (a vision encoder beside the decoder). */
  severalModels: boolean;
  /** PipelineOptions after device, threads and onNotice. */
  pipelineOptions?: OptionalProperty[];
  /** GenerateOptions before maxTokens, stop, sampling and signal. */
  generateOptions?: OptionalProperty[];
  /** The runtime's event type `generate` yields, and what its events are. */
  event: string;
  eventDocs: string;
}

/**
 * The writer every driver.ts is written with: ts-morph's code writer without ts-morph's Project,
 * whose TypeScript compiler would be loaded on every compile for nothing.
 */
export function driverWriter(): CodeBlockWriter {
  return new CodeBlockWriter({ newLine: "\n", indentNumberOfSpaces: 2, useTabs: false, useSingleQuote: false });
}

/** The lines every driver.ts starts with: what made it, and its imports of node:url and the runtime. */
export function writeDriverHead(w: CodeBlockWriter, header: string[], runtimeImport: string, runtimeNames: string[]): void {
  for (const line of header) w.writeLine(`// ${line}`);
  w.writeLine(`import { fileURLToPath } from "node:url";`);
  w.writeLine(`import { ${runtimeNames.join(", ")} } from ${JSON.stringify(runtimeImport)};`);
}

/**
 * PipelineOptions, GenerateOptions and Pipeline, the same for every driver so that `pipec run`'s
 * flags (device, threads, the device notice, max tokens, stop strings, sampling, Ctrl-C) reach
 * every kind of pipeline.
 */
export function writeDriverInterfaces(w: CodeBlockWriter, stage: GenerateNode, kind: DriverKind): void {
  writeInterface(w, "PipelineOptions", [
    { name: "device", type: "Device", doc: `Where the ${kind.severalModels ? "models run" : "model runs"}; the pipeline says \`${stage.device}\`.` },
    { name: "threads", type: "number", doc: "onnxruntime intra-op threads." },
    { name: "onNotice", type: "(line: string) => void", doc: "Receives the line saying which device `auto` fell back to." },
    ...(kind.pipelineOptions ?? []),
  ]);
  writeInterface(w, "GenerateOptions", [
    ...(kind.generateOptions ?? []),
    { name: "maxTokens", type: "number", doc: `Most tokens to generate; the pipeline says ${stage.maxTokens}.` },
    { name: "stop", type: "readonly string[]", doc: "Stop strings, replacing the pipeline's." },
    { name: "sampling", type: "SamplingConfig", doc: "Sampling, replacing the pipeline's." },
    { name: "signal", type: "AbortSignal" },
  ]);
  const prompt = kind.hasTokenizer ? "string | readonly number[]" : "readonly number[]";
  w.blankLine().write("export interface Pipeline").block(() => {
    w.writeLine(`/** ${kind.eventDocs} */`);
    w.writeLine(`generate(prompt: ${prompt}, options?: GenerateOptions): AsyncGenerator<${kind.event}>;`);
    w.writeLine(`/** ${kind.severalModels ? "Releases the models' sessions." : "Releases the model's session."} */`);
    w.writeLine("close(): Promise<void>;");
  });
}

/** `settings`, the values compiled from the pipeline, and the head of `createPipeline`, whose body `body` writes. */
export function writeSettingsAndFactory(w: CodeBlockWriter, settingsDoc: string, settings: (w: CodeBlockWriter) => void, body: (w: CodeBlockWriter) => void): void {
  w.blankLine().writeLine(`/** ${settingsDoc} */`).write("export const settings = ");
  settings(w);
  w.write(";").newLine();
  w.blankLine().write("export async function createPipeline(options: PipelineOptions = {}): Promise<Pipeline>").block(() => body(w));
  w.newLineIfLastNot();
}

/**
 * A value as TypeScript source, spaced as a formatter spaces it: `{ kind: "lookup", maxNgram: 3 }`,
 * `["a", "b"]`. `quoteKeys` quotes keys as JSON does; `replace` gives the source of some keys' values.
 */
export function sourceLiteral(value: unknown, opts: { quoteKeys?: boolean; replace?: Record<string, string> } = {}): string {
  const nested = { quoteKeys: opts.quoteKeys };
  if (Array.isArray(value)) return `[${value.map((v) => sourceLiteral(v, nested)).join(", ")}]`;
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  const entries = Object.entries(value).filter(([, v]) => v !== undefined);
  if (entries.length === 0) return "{}";
  const replace = opts.replace ?? {};
  return `{ ${entries.map(([k, v]) => `${opts.quoteKeys ? JSON.stringify(k) : k}: ${Object.hasOwn(replace, k) ? replace[k] : sourceLiteral(v, nested)}`).join(", ")} }`;
}

function writeInterface(w: CodeBlockWriter, name: string, properties: OptionalProperty[]): void {
  w.blankLine().write(`export interface ${name}`).block(() => {
    for (const p of properties) {
      if (p.doc !== undefined) w.writeLine(`/** ${p.doc} */`);
      w.writeLine(`${p.name}?: ${p.type};`);
    }
  });
}
