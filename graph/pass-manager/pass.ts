import type { Model } from "../ir/model.ts";

/**
 * A pass transforms a model in place. It declares what it needs to have run before it and what
 * it guarantees afterwards, so the manager can check pipelines; a lossy pass says so and the
 * compiler reports it wherever its output goes.
 */
export interface Pass {
  /** The command-line name: `--passes dce,cse`. */
  readonly name: string;
  /** One line for `--help` and manifests. */
  readonly description: string;
  /** Properties that must hold before the pass runs (e.g. "topologically-sorted"). */
  readonly requires?: readonly string[];
  /** Properties that hold after it ran. */
  readonly guarantees?: readonly string[];
  /** Properties that still hold after it changed the model, if they held before (others are lost). */
  readonly preserves?: readonly string[];
  /** True when the pass may change the model's outputs. */
  readonly lossy?: boolean;
  run(model: Model, ctx: PassContext): PassResult;
}

export interface PassResult {
  changed: boolean;
  /** Counters worth reporting: nodes removed, rule matches, ... */
  stats?: Record<string, number>;
}

/** What a pass may use while running. */
export interface PassContext {
  /** Options given to this pass, e.g. from `--passes 'tidal(top_k=128)'` or a .pipe file. */
  readonly options: Readonly<Record<string, unknown>>;
  /** Reports a note (shown with --verbose and in the compile manifest). */
  note(message: string): void;
}
