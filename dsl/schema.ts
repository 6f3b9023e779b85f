/**
 * The shape of the methods a .pipe file can request: slots, methods, their parameters with types
 * and defaults. The table itself is the compiler's (compiler/methods/, one file per method): it
 * hands its signatures to the checker, the formatter's printer and `parseMethodText`, so dsl/
 * knows the language without knowing how a method is carried out.
 */

/** The bounds of `adaptive(threshold, min, max)` and its defaults: the runtime's stopping rule. */
export interface AdaptiveBounds {
  threshold: number;
  min: number;
  max: number;
}

export type ParamType =
  | { kind: "int"; min?: number; max?: number }
  | { kind: "number"; min?: number; max?: number; minExclusive?: boolean }
  | { kind: "bool" }
  /** A positive token count or a percentage of the context (`256`, `12.5%`). */
  | { kind: "budget" }
  /** Layer indices, checked against the model's layer count; with `auto`, also the name `auto` (the pass chooses for the model). */
  | { kind: "layers"; auto?: true }
  /** The name of a model declared in the pipeline; with `keywords`, also one of those names (a source that is no model). */
  | { kind: "model"; keywords?: readonly string[] }
  /** A fixed draft length or `adaptive(threshold, min, max)`, each bound defaulting to `adaptive`'s. */
  | { kind: "draft-length"; adaptive: AdaptiveBounds }
  /** `auto` or a count of at least `min` (default 1); with `layers`, a count of layers, at most the model's. */
  | { kind: "auto-or-int"; min?: number; layers?: true };

/** A checked parameter value, as the pipeline IR and manifest carry it. */
export type ParamValue = number | boolean | string | number[] | { percent: number } | { adaptive: AdaptiveBounds };

export interface ParamSpec {
  type: ParamType;
  /** Absent: the parameter must be given. */
  default?: ParamValue;
  doc: string;
}

/** A method as the language sees it: what it takes and whether it may change the output. */
export interface MethodSpec {
  doc: string;
  /** True when the method may change what the model generates. */
  lossy: boolean;
  /** In the order they are given positionally and printed. */
  params: Readonly<Record<string, ParamSpec>>;
  /** A constraint between parameters (defaults filled in): the problem, or undefined. */
  check?: (params: Readonly<Record<string, ParamValue>>) => string | undefined;
}

export interface SlotSpec {
  doc: string;
  default: string;
  methods: Readonly<Record<string, MethodSpec>>;
}

/** Every optimisation and sampling slot of a stage, with its methods (the compiler's table supplies it). */
export type MethodTable = Readonly<Record<string, SlotSpec>>;

/** Plain settings of a stage, next to the method slots. */
export const DEVICES = ["auto", "cpu", "cuda", "webgpu"] as const;
export const STAGE_SETTINGS = ["max_tokens", "stop", "device"] as const;
export const MAX_TOKENS_DEFAULT = 128;

/** Stage kinds and their arguments (models, tokenizers, stages they read). */
export interface StageKindSpec {
  doc: string;
  args: readonly { name: string; refers: "model" | "tokenizer" | "stage"; required: boolean }[];
  /** Settings allowed in the stage's block. */
  settings: readonly string[];
}

export const STAGE_KINDS: Readonly<Record<string, StageKindSpec>> = {
  generate: {
    doc: "autoregressive decoding with a decoder-only model",
    args: [
      { name: "model", refers: "model", required: true },
      { name: "tokenizer", refers: "tokenizer", required: true },
      { name: "input", refers: "stage", required: false },
    ],
    settings: ["kv", "attention", "speculate", "sampling", "prune", ...STAGE_SETTINGS],
  },
  encode: {
    doc: "a vision encoder producing visual tokens for a later stage",
    args: [{ name: "model", refers: "model", required: true }],
    settings: ["prune", "device"],
  },
};

export const DECLARATIONS = ["model", "tokenizer", "stage"] as const;
export const MODEL_LOADERS = ["onnx"] as const;
export const TOKENIZER_KINDS = ["hf", "ids"] as const;
export const PIPELINE_SETTINGS = ["device"] as const;
