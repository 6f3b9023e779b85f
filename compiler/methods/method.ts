import type { MethodSpec, ParamValue } from "../../dsl/schema.ts";
import type { Pass } from "../../graph/pass-manager/pass.ts";
import type { OptionSpec, OptionValue } from "../../graph/pass-manager/registry.ts";
import type { DySpecSpeculation, LookupSpeculation, PruneConfig, RecycleSpeculation, SamplingConfig, SpecTrSpeculation, StreamingConfig } from "../../runtime/index.ts";

/** The stage settings that take a method. */
export type Slot = "kv" | "attention" | "speculate" | "sampling" | "prune";

/** A method's checked parameters, every default filled in. */
export type Params = Readonly<Record<string, ParamValue>>;

/**
 * A method's own graph pass, made from the method's checked parameters with typed options. The
 * pass is registered for `--passes` from this too (registry.ts): its options there are the
 * method's parameters, with the method's defaults, plus `extra`.
 */
export interface MethodPass<O> {
  /** The pass's name (its file's constant). */
  name: string;
  create(options: O): Pass;
  /** What a .pipe request compiles to: the parameters, and `extra` at their `lowered` values. */
  options(params: Params, extra: Readonly<Record<string, OptionValue>>): O;
  /** Options of the pass beyond the method's parameters, and the value a .pipe request gets. */
  extra?: Readonly<Record<string, OptionSpec & { lowered: OptionValue }>>;
  /** `--passes name(key=value)`: its options (declared types, defaults filled in) read with the pass's own readers. */
  read(options: Readonly<Record<string, OptionValue>>): O;
  /** Rewrites canonical attention: lift-attention runs before it and lower-attention after. */
  onAttention?: true;
}

/** A pass registered on its own (passes/index.ts) that a method places with options of the declared types. */
export interface SupportPass {
  name: string;
  options(params: Params): Readonly<Record<string, OptionValue>>;
  onAttention?: true;
}

/** A pass that derives a draft model from the stage's model, made from the method's parameters. */
export interface DraftDerivation {
  /** The registered pass's name. */
  name: string;
  create(params: Params): Pass;
  /** Its options as `--passes` text: what pipeline.ir and the manifest show. */
  text(params: Params): Record<string, string>;
  onAttention?: true;
}

/** `speculate:` as the runtime's options; those with a `model` name it, and the driver opens it. */
export type RuntimeSpeculation = LookupSpeculation | ({ kind: "draft" } & DraftSettings) | RecycleSpeculation | DraftModelSettings<DySpecSpeculation> | DraftModelSettings<SpecTrSpeculation>;

/** A runtime speculation with a draft model, the model given by its name in the pipeline. */
export type DraftModelSettings<S extends { model: unknown }> = Omit<S, "model"> & { model: string };

/** `speculate: draft(...)` without its model (the caller opens it): the draft length settings. */
export interface DraftSettings {
  /** The draft model's name in the pipeline. */
  model: string;
  draftLength: number | "adaptive";
  adaptive?: { threshold: number; min: number; max: number };
}

/** What the runtime is told of a request: the driver passes these to the generation loop. */
export interface RuntimeSettings {
  sampling?(params: Params): SamplingConfig;
  speculation?(params: Params): RuntimeSpeculation;
  /** Eviction to the rows the method's graph pass attends to. */
  streaming?(params: Params): StreamingConfig;
  /** Visual token pruning between the vision encoder and the decoder. */
  prune?(params: Params): PruneConfig;
  /** A KV policy for every sequence the stage runs: the generated driver imports its file and passes a factory (GenerateOptions.kvPolicies). */
  kvPolicy?(params: Params): KvPolicyRequest;
}

/**
 * A runtime KV policy (runtime/cache/kv-policy.ts) named by its file, so a method brings its own
 * policy without an edit to the runtime's index or the driver generator: the driver imports
 * `export` from `module` and constructs it with `options` for each sequence.
 */
export interface KvPolicyRequest {
  /** The policy's file, relative to runtime/ (e.g. "kv-policies/sliding-window.ts"). */
  module: string;
  /** The class it exports, constructed as `new Class(options)`. */
  export: string;
  /** Its options, as a literal the driver writes out (numbers, strings, flags). */
  options: Readonly<Record<string, number | string | boolean>>;
}

/**
 * How this build carries a method out. none: nothing to do; runtime: by the driver's settings;
 * graph: by its own pass or a support pass on the stage's model; draft-model: by speculating with
 * a draft model that a support pass derives from the stage's model (the request then lowers as
 * `draft` with `asDraft`'s parameters).
 */
export type Lowering =
  | { level: "none" }
  /** `support`: a pass the runtime's work needs on the stage's model (DivPrune's token distances, computed in the encoder's graph). */
  | { level: "runtime"; support?: SupportPass }
  | { level: "graph"; pass: MethodPass<never> }
  | { level: "graph"; support: SupportPass }
  | { level: "draft-model"; derive: DraftDerivation; asDraft(params: Params, model: string): Params };

/**
 * One method a .pipe can request: its signature (what the checker, the formatter and the
 * language reference read), how this build carries it out, what the runtime is told, and what
 * it combines with.
 */
export interface MethodDefinition extends MethodSpec {
  slot: Slot;
  name: string;
  lowering: Lowering;
  runtime?: RuntimeSettings;
  /**
   * With speculative decoding, whose verification step scores several queries at once: refused
   * (why, in words about the method), or the target model gets the tree-attention-mask pass
   * ahead of this method's pass, so each query attends to what a one-token step would.
   */
  withSpeculation?: { refused: string } | "tree-mask";
  /**
   * A speculation method defined for one kind of decoding only: with the other `sampling:` it is
   * refused at its `speculate:` value (`why`, in words about the method).
   */
  decoding?: { needs: "greedy" | "sampled"; why: string };
  /** A speculation method in a greedy stage: the logits-topk outputs its verification reads instead of the logits. */
  greedyIds?(params: Params): { k: number; argmax: boolean };
}

/** A method pass with its options' type erased, for the table (each entry is checked with its own type). */
export function methodPass<O>(pass: MethodPass<O>): MethodPass<never> {
  return pass as unknown as MethodPass<never>;
}
