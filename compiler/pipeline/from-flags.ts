import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import type { Span } from "../../dsl/ast.ts";
import { formatDiagnostic, type Diagnostic } from "../../dsl/diagnostics.ts";
import { parseMethodOption } from "../methods/option.ts";
import { makeDirs } from "../../graph/output-guard.ts";
import { cacheRoot } from "./cache-dir.ts";
import { prepareRun, type PreparedRun } from "./run.ts";

/** The method slots `pipec generate` takes as options, in the order a .pipe block lists them. */
export const FLAG_SLOTS = ["kv", "attention", "speculate", "sampling"] as const;
export type FlagSlot = (typeof FLAG_SLOTS)[number];

/** What `pipec generate` was asked for: the parts of a one-stage pipeline. */
export interface GenerateFlags {
  model: string;
  /** A tokenizer.json; absent: prompts and outputs are token ids. */
  tokenizer?: string;
  /** A draft model, declared as `draft` so `--speculate 'draft(model: draft)'` can name it. */
  draftModel?: string;
  /** Method expressions exactly as given, e.g. `{ kv: "streaming(sinks: 4, window: 60)" }`. */
  methods: Partial<Record<FlagSlot, string>>;
  maxTokens?: number;
  stop?: readonly string[];
  device?: "auto" | "cpu" | "cuda" | "webgpu";
}

/** One flag's text inside the synthesized source, so a diagnostic found there points back at the flag. */
interface FlagText {
  slot: FlagSlot;
  text: string;
  offset: number;
}

export interface FlagPipeline {
  /** The equivalent .pipe: what `pipec generate --print-pipe` shows and what is compiled. */
  source: string;
  flags: FlagText[];
}

/**
 * The one-stage .pipe equivalent to generate's flags. Paths are absolute, so the source means the
 * same wherever it is saved (the compile cache, or a file the user keeps).
 */
export function pipelineFromFlags(flags: GenerateFlags): FlagPipeline {
  const quote = (path: string) => JSON.stringify(resolve(path));
  let source = `# pipec generate ${basename(flags.model)}, as a pipeline\npipeline generate {\n`;
  source += `  model llm = onnx(${quote(flags.model)})\n`;
  if (flags.draftModel) source += `  model draft = onnx(${quote(flags.draftModel)})\n`;
  source += `  tokenizer tok = ${flags.tokenizer ? `hf(${quote(flags.tokenizer)})` : "ids"}\n\n`;
  source += "  stage decode = generate(llm, tok) {\n";
  const texts: FlagText[] = [];
  for (const slot of FLAG_SLOTS) {
    const text = flags.methods[slot];
    if (text === undefined) continue;
    source += `    ${slot}: `;
    texts.push({ slot, text, offset: source.length });
    source += `${text}\n`;
  }
  if (flags.maxTokens !== undefined) source += `    max_tokens: ${flags.maxTokens}\n`;
  if (flags.stop?.length) source += `    stop: [${flags.stop.map((s) => JSON.stringify(s)).join(", ")}]\n`;
  if (flags.device) source += `    device: ${flags.device}\n`;
  source += "  }\n}\n";
  return { source, flags: texts };
}

/**
 * Parses each method flag on its own, with the .pipe parser and schema: a misspelt method or
 * parameter is reported against the flag's text before any model is read. Returns the formatted
 * errors, or "" when every flag parses.
 */
export function checkMethodFlags(methods: GenerateFlags["methods"]): string {
  const messages = FLAG_SLOTS.flatMap((slot) => {
    const text = methods[slot];
    if (text === undefined) return [];
    const parsed = parseMethodOption(text, slot);
    return parsed.diagnostics.some((d) => d.severity === "error") ? [parsed.message] : [];
  });
  return messages.join("\n");
}

/** Formats the compile's diagnostics: one inside a flag's text against that flag (`--kv:1:12`), any other against the synthesized file. */
export function formatFlagDiagnostics(diagnostics: readonly Diagnostic[], pipeline: FlagPipeline, file: string): string {
  return diagnostics
    .map((d) => {
      const flag = d.span && pipeline.flags.find((f) => d.span!.offset >= f.offset && d.span!.offset <= f.offset + f.text.length);
      if (!flag) return formatDiagnostic(d, file, pipeline.source);
      return formatDiagnostic({ ...d, span: spanWithin(flag, d.span!) }, `--${flag.slot}`, flag.text);
    })
    .join("\n");
}

function spanWithin(flag: FlagText, span: Span): Span {
  const offset = span.offset - flag.offset;
  const before = flag.text.slice(0, offset).split("\n");
  return { offset, length: span.length, line: before.length, column: before.at(-1)!.length + 1 };
}

export interface FlagRun {
  pipeline: FlagPipeline;
  /** The synthesized .pipe, written into the cache folder. */
  file: string;
  prepared: PreparedRun;
}

/**
 * Compiles the flags' pipeline through the same cache as `pipec run`: the source is written as
 * `<cache>/<model folder>-<hash>.pipe` beside its compiled folder, so each combination of flags
 * keeps its own entry and trying one again costs no compile.
 */
export async function prepareFlagsRun(flags: GenerateFlags, cacheDir?: string): Promise<FlagRun> {
  const pipeline = pipelineFromFlags(flags);
  const hash = createHash("sha256").update(pipeline.source).digest("hex").slice(0, 12);
  const file = join(cacheRoot(cacheDir), `${basename(dirname(resolve(flags.model))).replace(/[^\w.-]/g, "_")}-${hash}.pipe`);
  if (!existsSync(file) || readFileSync(file, "utf8") !== pipeline.source) {
    makeDirs(dirname(file));
    writeFileSync(file, pipeline.source);
  }
  return { pipeline, file, prepared: await prepareRun(file, { cacheDir, cacheEntry: file.slice(0, -".pipe".length) }) };
}
