// Generation (batch 1): prefill (optionally in chunks), then one decode step per token,
// until EOS, a stop string, the token limit, the model's last position, or an abort.
// `stream` yields `{ kind: "token", token, text }` per token and ends with `{ kind: "end", ... stats }`.
import type * as ort from "onnxruntime-node";
import type { KvPolicy } from "./cache/kv-policy.ts";
import type { DecoderContract } from "./contract.ts";
import type { DecoderModel, TopTokens } from "./decoder.ts";
import { RuntimeError } from "./errors.ts";
import { StreamingEviction, type StreamingConfig } from "./kv-policies/streaming.ts";
import { RunClock, type GenerationStats } from "./metrics.ts";
import { Speculator, type SpeculateOptions } from "./speculative/speculator.ts";
import { DySpecDraft, type DySpecSpeculation } from "./speculative/dyspec-draft.ts";
import { SpecTrDecoding, type SpecTrSpeculation } from "./speculative/spectr-decoding.ts";
import { RECYCLE_TOP_K } from "./speculative/adjacency-matrix.ts";
import { TokenRecycling, type PromptStep, type RecycleSpeculation } from "./speculative/token-recycling.ts";
import type { LogitsProcessor } from "./sampling/processors.ts";
import { createSampler, type SamplingConfig } from "./sampling/sampler.ts";
import { floatData, readFloatRow } from "./tensors.ts";
import { TextStream } from "./text-stream.ts";
import type { TextTokenizer } from "./tokenizer.ts";
import { imagePromptRows, textRows, type ImagePrompt } from "./vision/splice.ts";

export interface GenerateOptions {
  /** Most tokens to generate (default 128). */
  maxTokens?: number;
  /** Greedy when absent. */
  sampling?: SamplingConfig;
  /** Extra logits processors, applied before temperature / top-k / top-p. */
  processors?: LogitsProcessor[];
  /** Ids that end generation (included in `tokens`); default: the tokenizer's EOS, else the model config's. `[]` disables. */
  eosTokenIds?: readonly number[];
  /** Generation ends before the first occurrence of any of these (needs a tokenizer). */
  stopStrings?: readonly string[];
  signal?: AbortSignal;
  /** Run the prompt in chunks of this many tokens (bounds prefill memory). Default: all at once. */
  prefillChunkSize?: number;
  /**
   * A prompt longer than the model's positions is an error by default; "truncate-left" keeps
   * its last (maxPositions - maxTokens) tokens (at least one) instead.
   */
  promptOverflow?: "error" | "truncate-left";
  /** Speculative decoding: draft several tokens and verify them in one call; the output is the same as without it. */
  speculate?: SpeculateOptions | RecycleSpeculation | SpecTrSpeculation | DySpecSpeculation;
  /** StreamingLLM: after every step keep only the sink rows and the recent window of the KV cache (the model needs the streaming-llm pass). */
  streaming?: StreamingConfig;
  /** More KV policies for this run, each made afresh for its sequence (runtime/cache/kv-policy.ts; docs/runtime.md, "KV policies"). */
  kvPolicies?: readonly ((contract: DecoderContract) => KvPolicy)[];
  /** Visual tokens that replace the prompt's image token (a decoder fed inputs_embeds); the prompt then runs in one call. */
  image?: ImagePrompt;
}

export type FinishReason = "eos" | "stop-string" | "max-tokens" | "context-full" | "aborted";

export interface TokenEvent {
  kind: "token";
  token: number;
  /** Text this token completes ("" without a tokenizer, or while a multi-token character or possible stop string is pending). */
  text: string;
}

export interface EndEvent {
  kind: "end";
  tokens: number[];
  text: string;
  finishReason: FinishReason;
  stats: GenerationStats;
}

export type GenerationEvent = TokenEvent | EndEvent;

export interface GenerationResult {
  tokens: number[];
  text: string;
  finishReason: FinishReason;
  stats: GenerationStats;
}

export class Generator {
  constructor(
    readonly model: DecoderModel,
    readonly tokenizer?: TextTokenizer,
  ) {
    const V = model.contract.vocabSize;
    if (tokenizer && V !== undefined) checkVocabulary(tokenizer, V);
  }

  async run(prompt: string | readonly number[], options: GenerateOptions = {}): Promise<GenerationResult> {
    for await (const event of this.stream(prompt, options)) {
      if (event.kind === "end") return { tokens: event.tokens, text: event.text, finishReason: event.finishReason, stats: event.stats };
    }
    throw new Error("generation ended without an end event");
  }

  async *stream(prompt: string | readonly number[], options: GenerateOptions = {}): AsyncGenerator<GenerationEvent> {
    const clock = new RunClock();
    const maxTokens = options.maxTokens ?? 128;
    if (!Number.isInteger(maxTokens) || maxTokens < 1) throw new RuntimeError("bad-max-tokens", `maxTokens must be a positive integer, got ${maxTokens}`);
    const promptIds = this.promptIds(prompt, maxTokens, options.promptOverflow ?? "error");
    const stopStrings = options.stopStrings ?? [];
    if (stopStrings.length && !this.tokenizer) throw new RuntimeError("stop-strings-need-tokenizer", "stop strings need a tokenizer; in token-id mode stop on eosTokenIds instead");
    const eos = new Set(options.eosTokenIds ?? (this.tokenizer?.eosTokenId !== undefined ? [this.tokenizer.eosTokenId] : this.model.eosTokenIds));
    const text = this.tokenizer ? new TextStream(this.tokenizer, stopStrings) : undefined;

    // Verifying several tokens in one call attends as one-token steps do only through a
    // per-query mask (decoder.ts, DecoderSequence.streaming); eviction waits until verification
    // has rolled back what it rejected.
    if (options.streaming && options.speculate && !this.model.contract.hasTreeMask) {
      throw new RuntimeError("streaming-with-speculation", "StreamingLLM with speculative decoding needs a model with a tree_attention_mask input (compile kv: streaming and speculate: in one .pipe): verification would attend to keys a one-token step does not");
    }
    const sequence = this.model.newSequence();
    if (options.streaming) sequence.policies.add(new StreamingEviction(options.streaming));
    for (const create of options.kvPolicies ?? []) sequence.policies.add(create(this.model.contract));
    const chunk = options.prefillChunkSize ?? promptIds.length;
    const imageRows = options.image ? options.image.kept.length - 1 : 0;
    if (options.image) checkImageOptions(options, this.model);
    sequence.reserve(sequence.policies.reserveRows({ prompt: promptIds.length, chunk, maxTokens }, promptIds.length + imageRows + maxTokens));
    const tokens = [...promptIds];
    const generated: number[] = [];
    let finishReason: FinishReason = "max-tokens";
    let logits: Float32Array | undefined;
    let sample: ReturnType<typeof createSampler> | undefined;
    let speculator: Speculator | TokenRecycling | SpecTrDecoding | DySpecDraft | undefined;
    /** Tokens a speculative step verified, handed out one per event. */
    const decided: number[] = [];

    // Greedy choices without processors need each row's argmax only: a model with in-graph
    // top-k outputs hands over ids instead of [S, V] logits, where that is the cheaper fetch
    // (DecoderSequence.forwardIdsOrLogits). Token Recycling seeds its successor lists from the prompt, so
    // its prefill asks for the top-k it stores.
    const recycle = options.speculate?.kind === "recycle" ? options.speculate : undefined;
    const promptTop = recycle ? (recycle.topK ?? RECYCLE_TOP_K) : 1;
    const idsSuffice = isPlainGreedy(options) && this.model.contract.vocabSize !== undefined;
    const prefillStart = clock.now();
    let last: ort.Tensor | TopTokens | undefined;
    const promptSteps: PromptStep[] = [];
    if (options.image) {
      const rows = await imagePromptRows(promptIds, options.image, this.model.embedder!);
      last = await sequence.forwardEmbeds(rows.embeds, rows.positions);
      if (options.image.dropAfterPrompt) sequence.gather(textRows(promptIds, options.image), sequence.position);
    }
    for (let at = 0; at < promptIds.length && !options.image && !options.signal?.aborted; at += chunk) {
      const ids = promptIds.slice(at, at + chunk);
      last = idsSuffice ? await sequence.forwardIdsOrLogits(ids, promptTop) : await sequence.forward(ids);
      if (recycle) promptSteps.push({ tokens: ids, output: last });
      sequence.policies.afterPromptChunk(sequence);
    }
    clock.prefillMs = clock.now() - prefillStart;
    sequence.policies.afterPrompt(sequence);

    while (last) {
      if (options.signal?.aborted) {
        finishReason = "aborted";
        break;
      }
      const V = "ids" in last ? this.model.contract.vocabSize! : last.dims[last.dims.length - 1]!;
      if (!logits) {
        if (this.tokenizer) checkVocabulary(this.tokenizer, V);
        logits = new Float32Array(V);
        sample = createSampler(options.sampling ?? {}, V, options.processors);
        if (recycle) {
          const recycling = TokenRecycling.create(sequence, V, recycle, options.sampling, options.processors);
          recycling.seed(promptSteps);
          speculator = recycling;
        } else if (options.speculate?.kind === "spectr") speculator = SpecTrDecoding.create(sequence, V, options.speculate, options.sampling, options.processors);
        else if (options.speculate?.kind === "dyspec") speculator = DySpecDraft.create(sequence, V, options.speculate, options.sampling, options.processors);
        else if (options.speculate && options.speculate.kind !== "recycle") speculator = Speculator.create(sequence, V, options.speculate, options.sampling, options.processors);
      }
      let token = decided.shift();
      if (token === undefined) {
        if ("ids" in last) token = last.ids[(last.rows - 1) * last.k]!;
        else {
          readFloatRow(floatData(last), (last.dims[1]! - 1) * V, logits);
          token = sample!(logits, { tokens });
        }
      }
      tokens.push(token);
      generated.push(token);
      let delta = text?.push(token) ?? "";
      clock.tokenOut();

      let finished: FinishReason | undefined;
      if (eos.has(token)) finished = "eos";
      else if (text?.stopped) finished = "stop-string";
      else if (generated.length >= maxTokens) finished = "max-tokens";
      else if (this.model.maxPositions !== undefined && sequence.position + 1 > this.model.maxPositions) finished = "context-full";
      if (finished && text) delta += text.flush();
      yield { kind: "token", token, text: delta };
      if (finished) {
        finishReason = finished;
        break;
      }
      if (decided.length) continue;
      if (speculator) {
        // Drafts never reach the last position or past maxTokens, so the stop checks above hold per token as without speculation.
        // `token` goes in at sequence.position: tokens.length - 1 without eviction, within the cache with StreamingLLM.
        const room = Math.min(maxTokens - generated.length - 1, (this.model.maxPositions ?? Infinity) - sequence.position - 2);
        decided.push(...(await speculator.step(token, tokens, room)));
      } else {
        last = idsSuffice ? await sequence.forwardIdsOrLogits([token], 1) : await sequence.forward([token]);
      }
      sequence.policies.afterDecodeStep(sequence);
    }
    await speculator?.release();
    if (!last) finishReason = "aborted";
    if (finishReason === "aborted") text?.flush(); // held-back text still belongs in the end event's text
    yield {
      kind: "end",
      tokens: generated,
      text: text?.text ?? "",
      finishReason,
      stats: {
        ...clock.finish({
          device: this.model.device,
          promptTokens: promptIds.length + imageRows,
          generatedTokens: generated.length,
          sessionRunMs: sequence.runMs,
          peakKvBytes: sequence.cache.peakBytes,
        }),
        ...(speculator && { speculative: speculator.stats(generated.length) }),
        ...(sequence.attended.stats() && { attendedKeys: sequence.attended.stats() }),
      },
    };
  }

  private promptIds(prompt: string | readonly number[], maxTokens: number, overflow: "error" | "truncate-left"): number[] {
    let ids: number[];
    if (typeof prompt === "string") {
      if (!this.tokenizer) throw new RuntimeError("no-tokenizer", "a text prompt needs a tokenizer (or pass token ids)");
      ids = this.tokenizer.encode(prompt);
    } else {
      ids = [...prompt];
    }
    if (ids.length === 0) throw new RuntimeError("empty-prompt", "the prompt is empty: give at least one token");
    const V = this.model.contract.vocabSize;
    const outside = ids.find((id) => !Number.isInteger(id) || id < 0 || (V !== undefined && id >= V));
    if (outside !== undefined) {
      throw new RuntimeError("token-out-of-vocabulary", `token id ${outside} is outside the model's vocabulary (${V === undefined ? "ids are >= 0" : `ids 0 to ${V - 1}`})`);
    }
    const limit = this.model.maxPositions;
    if (limit !== undefined && ids.length > limit) {
      if (overflow === "error") {
        throw new RuntimeError("prompt-too-long", `prompt of ${ids.length} tokens exceeds the model's ${limit} positions; shorten it or use promptOverflow: "truncate-left"`);
      }
      ids = ids.slice(ids.length - Math.max(1, limit - maxTokens));
    }
    return ids;
  }
}

/** An image goes into one prefill call of a decoder fed inputs_embeds; what would split or replay that prompt is refused. */
function checkImageOptions(options: GenerateOptions, model: DecoderModel): void {
  if (!model.embedder) throw new RuntimeError("no-embeds-input", "an image needs a decoder that takes inputs_embeds");
  for (const [given, what] of [[options.prefillChunkSize, "prefillChunkSize"], [options.speculate, "speculate"], [options.streaming, "streaming"]] as const) {
    if (given !== undefined) throw new RuntimeError("bad-option", `${what} is not supported with an image prompt`);
  }
}

/** Greedy with nothing that reads the logits first: the argmax is the whole decision. */
function isPlainGreedy({ sampling = {}, processors = [] }: GenerateOptions): boolean {
  return !sampling.temperature && (sampling.repetitionPenalty === undefined || sampling.repetitionPenalty === 1) && processors.length === 0;
}

function checkVocabulary(tokenizer: TextTokenizer, V: number): void {
  if (tokenizer.vocabSize > V) {
    throw new RuntimeError("tokenizer-mismatch", `the tokenizer has ${tokenizer.vocabSize} token ids but the model's logits cover ${V}; use the tokenizer that belongs to this model`);
  }
}
