import { PipecError } from "../errors.ts";
import type { Pass } from "./pass.ts";
import type { PipelineStep } from "./pipeline.ts";
import { didYouMean } from "./suggest.ts";

export type OptionValue = number | string | boolean;

export interface OptionSpec {
  type: "int" | "number" | "string" | "boolean";
  description: string;
  default?: OptionValue;
}

export interface PassEntry {
  name: string;
  /** Options the pass accepts; a pipeline naming any other is refused before anything runs. */
  options?: Readonly<Record<string, OptionSpec>>;
  /** Makes the pass; `options` holds every declared option that has a value (given or default), converted. */
  create(options: Readonly<Record<string, OptionValue>>): Pass;
}

/** A pass ready to run, with the options it was made with and where the pipeline named it. */
export interface PipelinePass {
  pass: Pass;
  options: Readonly<Record<string, OptionValue>>;
  step: Pick<PipelineStep, "name" | "options">;
}

/** Pass names to factories. Resolving a pipeline checks names and options up front, with suggestions. */
export class PassRegistry {
  private readonly entries = new Map<string, PassEntry>();

  register(entry: PassEntry): this {
    if (this.entries.has(entry.name)) throw new Error(`pass '${entry.name}' is registered twice`);
    this.entries.set(entry.name, entry);
    return this;
  }

  get names(): string[] {
    return [...this.entries.keys()];
  }

  entry(name: string): PassEntry {
    const e = this.entries.get(name);
    if (!e) throw new PipecError("unknown-pass", `unknown pass '${name}'${didYouMean(name, this.entries.keys())}`);
    return e;
  }

  /** One line per pass for `pipec passes` and `--help`: its description, made with default options. */
  describe(name: string): string {
    return this.entry(name).create(defaults(this.entry(name))).description;
  }

  /**
   * Makes one pass from option values that already have their declared types (a compiler's
   * lowering chose them): no text in between. `text` is how they read in a `--passes` pipeline.
   */
  make(name: string, options: Readonly<Record<string, OptionValue>>): PipelinePass {
    const entry = this.entry(name);
    const made = { ...defaults(entry) };
    for (const [key, value] of Object.entries(options)) made[key] = checkType(entry, key, value);
    const text = Object.fromEntries(Object.entries(options).map(([k, v]) => [k, String(v)]));
    return { pass: entry.create(made), options: made, step: { name, options: text } };
  }

  /** Makes the passes of a parsed pipeline, converting option text to the declared types. */
  resolve(steps: readonly PipelineStep[] | readonly Pick<PipelineStep, "name" | "options">[]): PipelinePass[] {
    return steps.map((step) => {
      const entry = this.entry(step.name);
      const options = { ...defaults(entry) };
      for (const [key, raw] of Object.entries(step.options)) options[key] = convert(entry, key, raw);
      return { pass: entry.create(options), options, step };
    });
  }
}

function defaults(entry: PassEntry): Record<string, OptionValue> {
  const out: Record<string, OptionValue> = {};
  for (const [key, spec] of Object.entries(entry.options ?? {})) if (spec.default !== undefined) out[key] = spec.default;
  return out;
}

function specOf(entry: PassEntry, key: string): OptionSpec {
  const specs = entry.options ?? {};
  const spec = specs[key];
  if (spec) return spec;
  const known = Object.keys(specs);
  const hint = known.length ? didYouMean(key, known) || ` (it takes ${known.join(", ")})` : " (it takes none)";
  throw new PipecError("pass-option", `pass '${entry.name}' has no option '${key}'${hint}`);
}

const JS_TYPES: Readonly<Record<OptionSpec["type"], string>> = { int: "number", number: "number", string: "string", boolean: "boolean" };

/** A typed value of a declared option, as it is (the compiler's mistake if it is not of the declared type). */
function checkType(entry: PassEntry, key: string, value: OptionValue): OptionValue {
  const spec = specOf(entry, key);
  if (typeof value !== JS_TYPES[spec.type] || (spec.type === "int" && !Number.isInteger(value))) throw new Error(`pass '${entry.name}': option '${key}' is declared ${spec.type}, but was given ${JSON.stringify(value)}`);
  return value;
}

function convert(entry: PassEntry, key: string, raw: unknown): OptionValue {
  const spec = specOf(entry, key);
  const text = String(raw);
  const bad = (what: string): never => {
    throw new PipecError("pass-option", `pass '${entry.name}': option '${key}' must be ${what}, got '${text}'`);
  };
  switch (spec.type) {
    case "int":
      return /^-?\d+$/.test(text) ? Number(text) : bad("an integer");
    case "number":
      return text.trim() !== "" && Number.isFinite(Number(text)) ? Number(text) : bad("a number");
    case "boolean":
      return text === "true" ? true : text === "false" ? false : bad("true or false");
    case "string":
      return text;
  }
}
