/**
 * Every method a .pipe file can request, its parameters, and the defaults of the paper that
 * introduced it (../shared/reference/algorithms.md). The checker, the formatter, the docs and
 * `parseMethodOption` all read this table; adding a method to the language is adding an entry.
 */

export type ParamType =
  | { kind: "int"; min?: number; max?: number }
  | { kind: "number"; min?: number; max?: number; minExclusive?: boolean }
  | { kind: "bool" }
  /** A positive token count or a percentage of the context (`256`, `12.5%`). */
  | { kind: "budget" }
  /** Layer indices, checked against the model's layer count; with `auto`, also the name `auto` (the pass chooses for the model). */
  | { kind: "layers"; auto?: true }
  /** The name of a model declared in the pipeline. */
  | { kind: "model" }
  /** A fixed draft length or `adaptive(threshold, min, max)`. */
  | { kind: "draft-length" }
  /** `auto` or a count of at least `min` (default 1). */
  | { kind: "auto-or-int"; min?: number };

/** A checked parameter value, as the pipeline IR and manifest carry it. */
export type ParamValue = number | boolean | string | number[] | { percent: number } | { adaptive: { threshold: number; min: number; max: number } };

export interface ParamSpec {
  type: ParamType;
  /** Absent: the parameter must be given. */
  default?: ParamValue;
  doc: string;
}

export interface MethodSpec {
  doc: string;
  /** True when the method may change what the model generates. */
  lossy: boolean;
  params: Readonly<Record<string, ParamSpec>>;
  /** A constraint between parameters (defaults filled in): the problem, or undefined. */
  check?: (params: Readonly<Record<string, ParamValue>>) => string | undefined;
}

export interface SlotSpec {
  doc: string;
  default: string;
  methods: Readonly<Record<string, MethodSpec>>;
}

const int = (min?: number, max?: number): ParamType => ({ kind: "int", min, max });

export const ADAPTIVE_DEFAULTS = { threshold: 0.3, min: 2, max: 20 };

/** Optimisation and sampling slots of a `generate` stage. */
export const SLOTS: Readonly<Record<string, SlotSpec>> = {
  kv: {
    doc: "KV-cache policy",
    default: "full",
    methods: {
      full: { doc: "keep every past key and value", lossy: false, params: {} },
      streaming: {
        doc: "StreamingLLM: keep the first `sinks` tokens and a window of the most recent ones",
        lossy: true,
        params: {
          sinks: { type: int(0), default: 4, doc: "attention-sink tokens kept from the start" },
          window: { type: int(1), default: 1020, doc: "most recent tokens kept" },
        },
      },
    },
  },
  attention: {
    doc: "sparse attention method",
    default: "dense",
    methods: {
      dense: { doc: "every query attends to every cached key", lossy: false, params: {} },
      tidal: {
        doc: "TidalDecode: full attention on a few layers selects the top-k tokens the sparse layers attend to",
        lossy: true,
        params: {
          top_k: { type: { kind: "budget" }, default: 256, doc: "tokens attended to by sparse layers" },
          full_layers: { type: { kind: "auto-or-int", min: 0 }, default: "auto", doc: "leading layers that keep full attention; auto: the paper's 2, fewer in a model of under 4 layers" },
          select_layers: { type: { kind: "layers", auto: true }, default: "auto", doc: "layers whose full attention re-selects the tokens; auto: the first sparse layer and the paper's depth 13/32 of the model" },
        },
        check: (p) => {
          if (p["select_layers"] === "auto" || p["full_layers"] === "auto") return undefined;
          const below = (p["select_layers"] as number[]).filter((l) => l < (p["full_layers"] as number));
          return below.length ? `select_layers [${below.join(", ")}] must not be below full_layers (${p["full_layers"]}): those layers attend fully already` : undefined;
        },
      },
      tokenselect: {
        doc: "TokenSelect: per-head query-key dot products pick the top-k cached tokens for each step",
        lossy: true,
        params: {
          top_k: { type: { kind: "budget" }, default: 2688, doc: "keys attended per step: the sinks, the window and the selected keys together" },
          sinks: { type: { kind: "auto-or-int", min: 0 }, default: "auto", doc: "leading tokens always attended to; auto: the paper's 128 of 2688 keys, scaled down to top_k" },
          window: { type: { kind: "auto-or-int", min: 0 }, default: "auto", doc: "most recent tokens always attended to (the new one included); auto: the paper's 512 of 2688 keys, scaled down to top_k" },
          kernel_size: { type: int(-1), default: -1, doc: "pooling kernel over token scores; -1 disables pooling" },
          selection_cache: { type: { kind: "bool" }, default: false, doc: "reuse the previous selection when consecutive queries are similar" },
          cache_threshold: { type: { kind: "number", min: 0, max: 1 }, default: 0.9, doc: "query cosine similarity above which the selection is reused" },
        },
        check: (p) => {
          const [topK, sinks, window] = [p["top_k"], p["sinks"], p["window"]];
          if (typeof topK !== "number") return undefined;
          const fixed = (typeof sinks === "number" ? sinks : 0) + Math.max(typeof window === "number" ? window : 0, 1);
          if (fixed <= topK) return undefined;
          return `sinks and window take ${fixed} keys, more than top_k (${topK}): top_k counts every key a step attends, the sinks, the window (the new token included) and the selected keys`;
        },
      },
    },
  },
  speculate: {
    doc: "speculative decoding",
    default: "none",
    methods: {
      none: { doc: "one token per model call", lossy: false, params: {} },
      lookup: {
        doc: "prompt-lookup decoding: draft the continuation of the last n-gram's earlier occurrence",
        lossy: false,
        params: {
          ngram: { type: int(1), default: 3, doc: "n-gram length matched against the context" },
          max_draft: { type: { kind: "draft-length" }, default: { adaptive: ADAPTIVE_DEFAULTS }, doc: "tokens drafted per step, or adaptive(threshold, min, max): the runtime's guard and cost model decide" },
        },
      },
      draft: {
        doc: "speculative sampling with a smaller draft model of the same vocabulary",
        lossy: false,
        params: {
          model: { type: { kind: "model" }, doc: "the draft model, declared with `model`" },
          k: { type: { kind: "draft-length" }, default: { adaptive: ADAPTIVE_DEFAULTS }, doc: "tokens drafted per step, or adaptive(threshold, min, max) (SpecDec++ with the runtime's guard)" },
        },
      },
      self: {
        doc: "self-speculation: the target model with some layers skipped drafts for itself",
        lossy: false,
        params: {
          skip: { type: { kind: "layers" }, doc: "layers skipped while drafting" },
          k: { type: { kind: "draft-length" }, default: { adaptive: ADAPTIVE_DEFAULTS }, doc: "tokens drafted per step, or adaptive(threshold, min, max)" },
        },
      },
      recycle: {
        doc: "Token Recycling: an adjacency matrix of past top-k candidates drafts a token tree",
        lossy: false,
        params: {
          top_k: { type: int(1), default: 8, doc: "candidates stored per token" },
          tree: { type: { kind: "auto-or-int" }, default: "auto", doc: "draft tree size, or auto for the paper's static tree" },
        },
      },
    },
  },
  sampling: {
    doc: "how the next token is chosen",
    default: "greedy",
    methods: {
      greedy: { doc: "the most likely token", lossy: false, params: {} },
      sample: {
        doc: "sampling from the softmax distribution",
        lossy: false,
        params: {
          temperature: { type: { kind: "number", min: 0, minExclusive: true }, default: 1.0, doc: "logits are divided by it" },
          top_k: { type: int(0), default: 0, doc: "keep the k most likely tokens; 0 keeps all" },
          top_p: { type: { kind: "number", min: 0, max: 1, minExclusive: true }, default: 1.0, doc: "nucleus: keep the smallest set with this much probability" },
          seed: { type: int(0), default: 0, doc: "random seed; the same seed gives the same tokens" },
          repetition_penalty: { type: { kind: "number", min: 0, minExclusive: true }, default: 1.0, doc: "logits of tokens already present are divided by it" },
        },
      },
    },
  },
  prune: {
    doc: "visual token pruning (vision stages)",
    default: "none",
    methods: {
      none: { doc: "keep every visual token", lossy: false, params: {} },
      divprune: {
        doc: "DivPrune: keep the most diverse subset of visual tokens",
        lossy: true,
        params: { keep: { type: { kind: "budget" }, default: { percent: 10 }, doc: "visual tokens kept" } },
      },
      globalcom2: {
        doc: "GlobalCom2: a thumbnail and grid x grid crops are encoded; the thumbnail's [CLS] attention sets each crop's budget and guides which tokens stay",
        lossy: true,
        params: {
          keep: { type: { kind: "budget" }, default: { percent: 25 }, doc: "visual tokens kept (the retention ratio)" },
          grid: { type: int(2), default: 2, doc: "crops per image side" },
        },
      },
      todre: {
        doc: "ToDRE: diversity selection seeded at the encoder's most attended token; the visual tokens leave the KV cache once the prompt is in",
        lossy: true,
        params: { keep: { type: { kind: "budget" }, default: { percent: 10 }, doc: "visual tokens kept" } },
      },
    },
  },
};

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
