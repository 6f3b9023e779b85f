// One decoder model (an onnxruntime session plus its contract) and the sequences it runs.
// A sequence owns the per-request state (KV cache, recurrent state) and turns "run these
// S tokens" into feeds for whatever contract the model has. At S = 1 (decode) the inputs
// are preallocated and reused (the logits output too, when binding is asked for): the host
// loop allocates nothing that grows with the context.
import { existsSync, statSync } from "node:fs";
import * as ort from "onnxruntime-node";
import { createKvCache, type KvCacheOptions } from "./cache/create-kv-cache.ts";
import type { KvCache, PerHeadIndices } from "./cache/kv-cache.ts";
import { KvPolicies, type KvCall, type KvPolicyHost } from "./cache/kv-policy.ts";
import type { StreamingConfig } from "./kv-policies/streaming.ts";
import { contractPolicies } from "./kv-policies/index.ts";
import { RecurrentState, type RecurrentSnapshot } from "./cache/recurrent-state.ts";
import { AttendedKeys } from "./attended-keys.ts";
import { readContract, type DecoderContract } from "./contract.ts";
import { readDeclaredConfig } from "./declared-config.ts";
import { TokenEmbedder } from "./token-embedder.ts";
import { openSession, type ResolvedDevice, type SessionOptions } from "./device.ts";
import { isRuntimeError, RuntimeError } from "./errors.ts";
import { cleanOrtMessage } from "./ort-message.ts";
import { MIN_LOGITS_FOR_IDS } from "./ids-or-logits.ts";
import { chainParents, treeDepths, TreeMasks } from "./tree-attention.ts";
import { TREE_MASK_INPUT } from "./contract-names.ts";
import { allocInt, intTensor, setInt, type IntArray } from "./tensors.ts";

export interface DecoderOptions extends SessionOptions {
  /** Longest sequence (prompt + generated) the model supports; read from genai_config.json or config.json beside the model when absent. */
  maxPositions?: number;
  kvCache?: KvCacheOptions;
  /**
   * Bind one-token steps' outputs (logits, present_new rows) to preallocated tensors.
   * onnxruntime-node 1.30 writes into them but still returns a fresh copy, so on the CPU
   * this saves nothing (docs/runtime.md); it is here for providers where it pays.
   */
  bindOutputs?: boolean;
  /**
   * A call on a model with in-graph argmax / top-k outputs (the logits-topk pass) fetches those
   * ids when it would return at least this many logits (rows x V); below, it fetches the logits
   * and chooses on the host. Default MIN_LOGITS_FOR_IDS.
   */
  minLogitsForIds?: number;
  /** A decoder fed inputs_embeds: its token embedding model; default embed_tokens.onnx beside it. */
  embedTokens?: string;
}

export class DecoderModel {
  /** Steps, of all this model's sequences, that fetched the full [S, V] logits (forwardTop's do not). */
  logitsFetches = 0;

  private constructor(
    /** The model file, named in errors. */
    readonly path: string,
    readonly session: ort.InferenceSession,
    readonly device: ResolvedDevice,
    readonly contract: DecoderContract,
    readonly maxPositions: number | undefined,
    /** End-of-sequence ids the model's config declares (empty when it declares none). */
    readonly eosTokenIds: readonly number[],
    private readonly cacheOptions: KvCacheOptions,
    readonly bindOutputs: boolean,
    private readonly minLogitsForIds: number,
    /** Turns token ids into inputs_embeds, for a decoder that takes those (contract.embedsDim). */
    readonly embedder?: TokenEmbedder,
  ) {}

  static async open(modelPath: string, options: DecoderOptions = {}): Promise<DecoderModel> {
    if (!existsSync(modelPath)) throw new RuntimeError("model-not-found", `model file ${modelPath} does not exist`);
    if (statSync(modelPath).size === 0) throw new RuntimeError("invalid-model", `${modelPath}: the file is empty, not an ONNX model`);
    const { minLogitsForIds = MIN_LOGITS_FOR_IDS } = options;
    if (!(minLogitsForIds >= 0)) throw new RuntimeError("bad-option", `minLogitsForIds must be a number >= 0, got ${minLogitsForIds}`);
    const { session, device } = await openSession(modelPath, options);
    try {
      const contract = readContract(session);
      const declared = readDeclaredConfig(modelPath);
      const embedder = contract.embedsDim === undefined ? undefined : await openEmbedder(modelPath, contract.embedsDim, { ...options, device });
      return new DecoderModel(modelPath, session, device, contract, options.maxPositions ?? declared.maxPositions, declared.eosTokenIds, options.kvCache ?? {}, options.bindOutputs ?? false, minLogitsForIds, embedder);
    } catch (e) {
      await session.release();
      // The contract's reasons name a model input; the file they are about comes first.
      if (isRuntimeError(e)) throw new RuntimeError(e.code, `${modelPath}: ${e.message}`);
      throw e;
    }
  }

  /** Whether the graph computes each row's k likeliest ids itself (the logits-topk pass's outputs). */
  offersTop(k: number): boolean {
    const { argmax, topkIndices } = this.contract;
    return (k === 1 && argmax !== undefined) || (topkIndices !== undefined && k <= topkIndices.k);
  }

  /** Whether a call of `rows` rows that needs each row's k likeliest ids should fetch them from the graph rather than the logits (see MIN_LOGITS_FOR_IDS). */
  fetchesTop(k: number, rows: number): boolean {
    return this.offersTop(k) && rows * (this.contract.vocabSize ?? Infinity) >= this.minLogitsForIds;
  }

  newSequence(): DecoderSequence {
    return new DecoderSequence(this, createKvCache(this.contract, this.cacheOptions), new RecurrentState(this.contract.recurrent));
  }

  async release(): Promise<void> {
    await this.session.release();
    await this.embedder?.release();
  }
}

async function openEmbedder(modelPath: string, dim: number, options: DecoderOptions): Promise<TokenEmbedder> {
  const embedder = await TokenEmbedder.open(modelPath, options, options.embedTokens);
  if (embedder.dim !== dim) {
    await embedder.release();
    throw new RuntimeError("unsupported-model", `the token embedding model gives ${embedder.dim}-wide embeddings but the decoder's inputs_embeds is ${dim} wide`);
  }
  return embedder;
}

/** Per row of one step, the model's likeliest token ids, likeliest first (ties: the lower id): row r's are ids[r * k ..]. */
export interface TopTokens {
  rows: number;
  k: number;
  ids: Int32Array;
}

/** A sequence's point to come back to (models with recurrent state: see runtime/speculative/recurrent-rollback.ts). */
export interface SequenceSnapshot {
  length: number;
  position: number;
  state: RecurrentSnapshot;
}

/** Reused input tensors for one-token steps. */
interface SingleTokenInputs {
  ids: IntArray;
  idsTensor: ort.Tensor;
  positions?: IntArray;
  positionsTensor?: ort.Tensor;
  logits?: ort.Tensor;
}

export class DecoderSequence implements KvPolicyHost {
  /** Milliseconds spent inside session.run, summed over this sequence's steps. */
  runMs = 0;
  private readonly single: SingleTokenInputs;
  private readonly treeMasks = new TreeMasks();
  private nextPosition = 0;
  /** Cache length before the latest call: where recurrent state can roll back to without a snapshot. */
  private lengthBeforeLast?: number;
  /** What decides the cache's rows beyond appending: the contract's (TokenSelect's selection cache), then the run's (StreamingLLM). */
  readonly policies = new KvPolicies();
  /** What the sparse layers attended, per method (models compiled with sparse attention or StreamingLLM). */
  readonly attended: AttendedKeys;
  /**
   * StreamingLLM's sinks and window, set by its policy once the prompt is in (the prompt attends densely,
   * as without speculation): a model with a tree_attention_mask input then gets a mask per step
   * that lets each query see what a one-token step at its row would, so verifying several
   * tokens at once attends as one-token steps do.
   */
  streaming?: StreamingConfig;

  constructor(
    readonly model: DecoderModel,
    readonly cache: KvCache,
    private readonly recurrent: RecurrentState,
  ) {
    const { idsType, positionType, vocabSize } = model.contract;
    for (const policy of contractPolicies(model.contract)) this.policies.add(policy);
    this.attended = new AttendedKeys(model.contract.attendedKeys);
    const ids = allocInt(idsType, 1);
    this.single = { ids, idsTensor: new ort.Tensor(idsType, ids, [1, 1]) };
    if (positionType) {
      this.single.positions = allocInt(positionType, 1);
      this.single.positionsTensor = new ort.Tensor(positionType, this.single.positions, [1, 1]);
    }
    if (model.bindOutputs && vocabSize !== undefined) {
      const type = model.session.outputMetadata.find((m) => m.name === model.contract.logits);
      const logitsType = type?.isTensor && type.type === "float16" ? "float16" : "float32";
      const data = logitsType === "float16" ? new Uint16Array(vocabSize) : new Float32Array(vocabSize);
      this.single.logits = new ort.Tensor(logitsType, data, [1, 1, vocabSize]);
    }
  }

  get contract(): DecoderContract {
    return this.model.contract;
  }

  /** Tokens held in the cache. */
  get length(): number {
    return this.cache.length;
  }

  /** Position id of the next token: the cache length, unless a gather said otherwise. */
  get position(): number {
    return this.nextPosition;
  }

  /** Whether the model carries recurrent state, which rolls back only to a snapshot or to before the latest call. */
  get hasRecurrentState(): boolean {
    return !this.recurrent.isEmpty;
  }

  get stateBytes(): number {
    return this.cache.bytes + this.recurrent.bytes;
  }

  /**
   * Runs `tokens` after what the sequence holds; returns logits [1, S, V]. `treeParents` (models
   * with a tree_attention_mask input only) makes the tokens a tree: token i sees the cache and
   * its ancestors and sits at position + depth; all S rows are cached, gather keeps a path.
   */
  async forward(tokens: readonly number[], treeParents?: readonly number[]): Promise<ort.Tensor> {
    const { logits } = this.model.contract;
    this.model.logitsFetches++;
    const bound = tokens.length === 1 ? this.single.logits : undefined;
    return (await this.run(tokens, treeParents, { [logits]: bound ?? null }))[logits]!;
  }

  /**
   * Runs `tokens` like `forward` but fetches only the model's in-graph argmax or top-k ids (the
   * logits-topk pass), not [S, V] logits; for consumers that need no more (greedy choices,
   * Token Recycling's successor lists). Needs `model.offersTop(k)`.
   */
  async forwardTop(tokens: readonly number[], k: number, treeParents?: readonly number[]): Promise<TopTokens> {
    const { argmax, topkIndices } = this.model.contract;
    if (!this.model.offersTop(k)) throw new RuntimeError("no-topk-output", `the model computes no top-${k} ids in its graph (compile it with the logits-topk pass)`);
    const name = k === 1 && argmax ? argmax : topkIndices!.name;
    const ids = (await this.run(tokens, treeParents, { [name]: null }))[name]!;
    const rows = ids.dims[1]!;
    const stored = ids.dims.length === 3 ? ids.dims[2]! : 1;
    return { rows, k: stored, ids: Int32Array.from(ids.data as BigInt64Array, Number) };
  }

  /**
   * Runs `tokens` for a consumer that needs each row's k likeliest ids: the graph's ids where the
   * model has them and they are the cheaper fetch (DecoderModel.fetchesTop), else the logits.
   */
  forwardIdsOrLogits(tokens: readonly number[], k: number, treeParents?: readonly number[]): Promise<TopTokens | ort.Tensor> {
    return this.model.fetchesTop(k, tokens.length) ? this.forwardTop(tokens, k, treeParents) : this.forward(tokens, treeParents);
  }

  /**
   * Runs rows given as embeddings ([S * C], the decoder's inputs_embeds) at explicit positions,
   * which may leave gaps (visual tokens pruned at their original positions); the next position
   * follows the last. Returns logits [1, S, V].
   */
  async forwardEmbeds(embeds: Float32Array, positions: readonly number[]): Promise<ort.Tensor> {
    const C = this.model.contract.embedsDim;
    if (C === undefined) throw new RuntimeError("no-embeds-input", "the model takes input_ids, not inputs_embeds");
    if (embeds.length !== positions.length * C) throw new RangeError(`${positions.length} positions but ${embeds.length / C} embedding rows`);
    const { logits } = this.model.contract;
    this.model.logitsFetches++;
    return (await this.run({ embeds: new ort.Tensor("float32", embeds, [1, positions.length, C]), positions }, undefined, { [logits]: null }))[logits]!;
  }

  /** Runs `tokens` for their effect on the caches alone, fetching no logits (replaying accepted tokens). */
  async advance(tokens: readonly number[]): Promise<void> {
    await this.run(tokens, undefined, {});
  }

  snapshot(): SequenceSnapshot {
    return { length: this.cache.length, position: this.nextPosition, state: this.recurrent.snapshot() };
  }

  /** Back to `snapshot`; the cache must still hold its rows (it only grew or was cut back to no less since). */
  restore(snapshot: SequenceSnapshot): void {
    if (snapshot.length > this.cache.length) throw new RangeError(`snapshot of ${snapshot.length} tokens but the cache holds ${this.cache.length}`);
    const cut = snapshot.length !== this.cache.length;
    this.cache.truncate(snapshot.length);
    this.recurrent.restore(snapshot.state);
    this.nextPosition = snapshot.position;
    this.lengthBeforeLast = undefined;
    if (cut) this.policies.rowsChanged({ kind: "truncate", length: snapshot.length });
  }

  private async run(input: readonly number[] | GivenRows, treeParents: readonly number[] | undefined, wanted: Record<string, ort.Tensor | null>): Promise<ort.InferenceSession.ReturnType> {
    const given = "embeds" in input ? input : undefined;
    const tokens = given ? [] : (input as readonly number[]);
    const S = given ? given.positions.length : tokens.length;
    const start = this.nextPosition;
    const end = given ? Math.max(start - 1, ...given.positions) + 1 : start + S;
    const { contract, maxPositions, session } = this.model;
    if (S === 0) throw new RangeError("forward needs at least one token");
    if (maxPositions !== undefined && end > maxPositions) {
      throw new RuntimeError("context-overflow", `sequence of ${end} tokens exceeds the model's ${maxPositions} positions`);
    }
    const feeds: Record<string, ort.Tensor> = {};
    const fetches: Record<string, ort.Tensor | null> = {};
    if (given) feeds.inputs_embeds = given.embeds;
    else if (this.model.embedder) feeds.inputs_embeds = new ort.Tensor("float32", await this.model.embedder.embed(tokens), [1, S, this.model.embedder.dim]);
    else feeds.input_ids = S === 1 ? this.singleIds(tokens[0]) : intTensor(contract.idsType, tokens, [1, S]);
    if (treeParents && !contract.hasTreeMask) throw new RuntimeError("no-tree-attention", "a token tree needs a model compiled with the tree-attention-mask pass (it has no tree_attention_mask input)");
    if (treeParents && treeParents.length !== S) throw new RangeError(`${S} tokens but ${treeParents.length} tree parents`);
    if (given && !contract.positionType) throw new RuntimeError("no-position-ids", "rows at explicit positions need a model with a position_ids input");
    if (contract.positionType) {
      if (given) feeds.position_ids = intTensor(contract.positionType, given.positions, [1, S]);
      else if (S === 1) feeds.position_ids = this.singlePosition(start);
      else {
        const offsets = treeParents ? treeDepths(treeParents) : undefined;
        feeds.position_ids = intTensor(contract.positionType, Array.from({ length: S }, (_, j) => start + (offsets ? offsets[j] : j)), [1, S]);
      }
    }
    if (contract.hasTreeMask) feeds[TREE_MASK_INPUT] = this.treeMasks.tensor(this.cache.length, treeParents ?? chainParents(S), this.streaming);
    if (contract.hasCacheBranchFlag) feeds.use_cache_branch = new ort.Tensor("bool", [this.cache.length > 0], [1]);
    this.cache.prepare(S, feeds, fetches, this.model.bindOutputs);
    this.recurrent.prepare(feeds, fetches);
    const call: KvCall = { rows: S, pastRows: this.cache.length };
    this.policies.beforeCall(call, feeds, fetches);
    this.attended.prepare(fetches);
    if (contract.maskType) {
      const mask = this.cache.mask(S);
      feeds.attention_mask = new ort.Tensor(contract.maskType, mask, [1, mask.length]);
    }
    Object.assign(fetches, wanted);

    const t0 = performance.now();
    const outputs = await session.run(feeds, fetches).catch((e: unknown) => {
      throw new RuntimeError("model-run-failed", `${this.model.path}: onnxruntime failed to run the model: ${cleanOrtMessage(e)}`);
    });
    this.runMs += performance.now() - t0;

    this.cache.accept(outputs, S);
    this.recurrent.accept(outputs);
    this.lengthBeforeLast = call.pastRows;
    this.policies.afterCall(call, outputs);
    this.attended.accept(outputs, S);
    this.nextPosition = end;
    return outputs;
  }

  /** Makes room for `rows` tokens in the cache up front (no growth while they arrive). */
  reserve(rows: number): void {
    this.cache.reserve(this.model.maxPositions === undefined ? rows : Math.min(rows, this.model.maxPositions));
  }

  /**
   * Keeps the first `length` tokens (rollback after speculative verification). With recurrent
   * state only the latest call can be undone this way (its state before is kept); other
   * points need a `snapshot`.
   */
  truncate(length: number): void {
    if (length !== this.cache.length && !this.recurrent.isEmpty) {
      if (length !== this.lengthBeforeLast || !this.recurrent.undoLast()) {
        throw new RuntimeError("cannot-rollback", `this model carries recurrent state (past_conv.* or similar) that cannot be cut to ${length} tokens: only its latest call can be undone, other points need a snapshot`);
      }
      this.lengthBeforeLast = undefined;
    }
    const cut = length !== this.cache.length;
    this.cache.truncate(length);
    this.nextPosition = length;
    if (cut) this.policies.rowsChanged({ kind: "truncate", length });
  }

  /**
   * Keeps the cached tokens at `indices`, in that order. The next position is `nextPosition`:
   * by default indices.length (an accepted tree path packed after the context; StreamingLLM's
   * eviction, whose positions stay within the cache). A selection that must keep counting from
   * where the sequence was passes a larger one (no caller in the runtime does today). Models that
   * derive positions from the mask (no position_ids input) can only use the default.
   */
  gather(indices: readonly number[], nextPosition = indices.length): void {
    this.checkGather(indices.length, nextPosition);
    this.cache.gather(indices);
    this.nextPosition = nextPosition;
    this.policies.rowsChanged({ kind: "gather", indices });
  }

  /** Keeps, per layer and KV head, the rows `indices` names (KvCache.gatherPerHead); the next position stays unless given. */
  gatherPerHead(indices: PerHeadIndices, nextPosition = this.nextPosition): void {
    this.checkGather(indices[0]?.[0]?.length ?? 0, nextPosition);
    this.cache.gatherPerHead(indices);
    this.nextPosition = nextPosition;
    this.policies.rowsChanged({ kind: "gather-per-head", indices });
  }

  private checkGather(kept: number, nextPosition: number): void {
    if (!this.recurrent.isEmpty) throw new RuntimeError("cannot-rollback", "this model carries recurrent state that cannot be gathered");
    if (!Number.isInteger(nextPosition) || nextPosition < kept) throw new RangeError(`next position ${nextPosition} is before the ${kept} kept rows`);
  }

  private singleIds(token: number): ort.Tensor {
    setInt(this.single.ids, 0, token);
    return this.single.idsTensor;
  }

  private singlePosition(position: number): ort.Tensor {
    setInt(this.single.positions!, 0, position);
    return this.single.positionsTensor!;
  }
}

/** Rows given as embeddings at explicit positions (DecoderSequence.forwardEmbeds). */
interface GivenRows {
  embeds: ort.Tensor;
  positions: readonly number[];
}
