// A decoder's calling contract, read from the session's input/output names and metadata.
// Recognised layouts (B = batch, P = past rows, T = P + S, Hkv = KV heads, D = head dim):
//   Optimum:           past_key_values.{i}.key|value [B,Hkv,P,D] -> present.{i}.key|value [B,Hkv,T,D]
//   append-only:       past_key_values.{i}.key|value [B,Hkv,C,D] -> present_new.{i}.key|value [B,Hkv,S,D]
//                      (the runtime owns a buffer of capacity C; rows past the cache length are masked)
//   genai GPT-2:       past_{i} [2,B,H,P,D] -> present_{i} [2,B,H,T,D] (K and V stacked)
//   recurrent state:   any other past_X -> present_X pair (e.g. LFM2's past_conv.{i}), carried opaquely
//   selection cache:   tokenselect_cached_fingerprint.{i} [F], tokenselect_cached_indices.{i} [K]
//                      -> tokenselect_fingerprint.{i}, tokenselect_indices.{i}, tokenselect_reused.{i}
//                      (TokenSelect with selection_cache; see kv-policies/token-select-cache.ts)
import type { AttendedKeysSlot } from "./attended-keys.ts";
import type * as ort from "onnxruntime-node";
import {
  appendOnlyOutputOf, ARGMAX_OUTPUT, ATTENDED_KEYS_OUTPUT, ATTENTION_MASK, INPUT_IDS, INPUTS_EMBEDS, kvInputLayer, LOGITS, PAST_KEY_VALUES_PREFIX,
  POSITION_IDS, presentOf, SELECTION_CACHE_INPUT, selectionCacheName, TOPK_INDICES_OUTPUT, TREE_MASK_INPUT, USE_CACHE_BRANCH,
} from "./contract-names.ts";
import { RuntimeError } from "./errors.ts";
import { asFloatType, asIntType, type FloatType, type IntType } from "./tensors.ts";

export type KvMode = "present" | "append";

export interface StateSlot {
  input: string;
  output: string;
  type: FloatType;
  /** Input dims with B = 1 and the sequence axis (if any) = 0. */
  dims: number[];
}

export interface KvSlot extends StateSlot {
  /** Axis of P in `dims` (rank - 2 in every known layout). */
  seqAxis: number;
  /** The decoder layer the input names (`past_key_values.{layer}.*`, `past_{layer}`). */
  layer: number;
}

export interface DecoderContract {
  /** Type of input_ids; for a model fed inputs_embeds, of the ids its token embedder takes (int64). */
  idsType: IntType;
  /** The model takes inputs_embeds [B, S, C] instead of input_ids (vision-language decoders): C. */
  embedsDim?: number;
  maskType?: IntType;
  positionType?: IntType;
  /** Merged with/without-past exports pick their branch with this flag. */
  hasCacheBranchFlag: boolean;
  /** Compiled with tree-attention-mask: every step feeds tree_attention_mask (see tree-attention.ts). */
  hasTreeMask?: boolean;
  logits: string;
  /** V when the model declares it as a number. */
  vocabSize?: number;
  /** In-graph top-k of the logits (the logits-topk pass): ids [B, S, k] int64, likeliest first. */
  topkIndices?: { name: string; k: number };
  /** In-graph argmax of the logits (the logits-topk pass): ids [B, S] int64. */
  argmax?: string;
  kvMode: KvMode;
  kv: KvSlot[];
  recurrent: StateSlot[];
  /** Layers compiled with TokenSelect's selection cache, each with its fingerprint size F. */
  selectionCache: SelectionCacheSlot[];
  /** Sparse layers that report the keys they attended (attended-keys.ts). */
  attendedKeys: AttendedKeysSlot[];
}

export interface SelectionCacheSlot {
  layer: number;
  fingerprintSize: number;
}

function tensorMeta(list: readonly ort.InferenceSession.ValueMetadata[], name: string): ort.InferenceSession.TensorValueMetadata {
  const meta = list.find((m) => m.name === name);
  if (!meta || !meta.isTensor) throw new RuntimeError("unsupported-model", `model value ${name} is not a tensor`);
  return meta;
}

/** Dims with the batch axis set to 1, the sequence axis to 0, and every other axis fixed. */
function stateDims(name: string, shape: readonly (number | string | undefined)[], batchAxis: number, seqAxis?: number): number[] {
  return shape.map((d, axis) => {
    if (axis === batchAxis) return 1;
    if (axis === seqAxis) return 0;
    if (typeof d === "number" && d >= 0) return d;
    throw new RuntimeError("unsupported-model", `model input ${name} has a symbolic dimension ${String(d)} at axis ${axis}; only batch and sequence axes may be symbolic`);
  });
}

function presentNameFor(input: string, outputs: Set<string>): { output: string; mode: KvMode } | undefined {
  if (input.startsWith(PAST_KEY_VALUES_PREFIX)) {
    const suffix = input.slice(PAST_KEY_VALUES_PREFIX.length);
    if (outputs.has(appendOnlyOutputOf(suffix))) return { output: appendOnlyOutputOf(suffix), mode: "append" };
    if (outputs.has(presentOf(suffix))) return { output: presentOf(suffix), mode: "present" };
    return undefined;
  }
  const other = input.replace(/^past/, "present");
  return outputs.has(other) ? { output: other, mode: "present" } : undefined;
}

export function readContract(session: ort.InferenceSession): DecoderContract {
  const inputs = session.inputMetadata;
  const outputNames = new Set(session.outputNames);
  const embeds = session.inputNames.includes(INPUTS_EMBEDS);
  if (!session.inputNames.includes(INPUT_IDS) && !embeds) throw new RuntimeError("unsupported-model", `model has neither an input_ids nor an inputs_embeds input (inputs: ${session.inputNames.join(", ")})`);
  if (!outputNames.has(LOGITS)) throw new RuntimeError("unsupported-model", `model has no logits output (outputs: ${session.outputNames.join(", ")})`);

  const contract: DecoderContract = {
    idsType: embeds ? "int64" : asIntType(INPUT_IDS, tensorMeta(inputs, INPUT_IDS).type),
    hasCacheBranchFlag: false,
    logits: LOGITS,
    kvMode: "present",
    kv: [],
    recurrent: [],
    selectionCache: [],
    attendedKeys: [],
  };
  const logitsShape = tensorMeta(session.outputMetadata, LOGITS).shape;
  const V = logitsShape[logitsShape.length - 1];
  if (typeof V === "number") contract.vocabSize = V;
  readTopOutputs(session, contract);
  for (const output of session.outputNames) {
    const m = ATTENDED_KEYS_OUTPUT.exec(output);
    if (m) contract.attendedKeys.push({ method: m[1]!, layer: Number(m[2]), output });
  }
  if (embeds) contract.embedsDim = embedsDim(tensorMeta(inputs, INPUTS_EMBEDS));

  const modes = new Set<KvMode>();
  for (const name of session.inputNames) {
    if (name === INPUT_IDS || name === INPUTS_EMBEDS) continue;
    if (name === ATTENTION_MASK) contract.maskType = asIntType(name, tensorMeta(inputs, name).type);
    else if (name === POSITION_IDS) contract.positionType = asIntType(name, tensorMeta(inputs, name).type);
    else if (name === USE_CACHE_BRANCH) contract.hasCacheBranchFlag = true;
    else if (name === TREE_MASK_INPUT) contract.hasTreeMask = true;
    else if (SELECTION_CACHE_INPUT.test(name)) readSelectionCacheInput(session, name, contract);
    else if (name.startsWith("past")) {
      const meta = tensorMeta(inputs, name);
      const pair = presentNameFor(name, outputNames);
      if (!pair) throw new RuntimeError("unsupported-model", `model input ${name} has no matching present output to feed it from`);
      const type = asFloatType(name, meta.type);
      const layer = kvInputLayer(name);
      if (layer !== undefined) {
        const combined = !name.startsWith(PAST_KEY_VALUES_PREFIX);
        if (meta.shape.length < 3) throw new RuntimeError("unsupported-model", `model input ${name} has rank ${meta.shape.length}; a KV cache input has a batch, a sequence and a head-size axis at least ([B, Hkv, P, D])`);
        const seqAxis = meta.shape.length - 2;
        contract.kv.push({ input: name, output: pair.output, type, seqAxis, layer, dims: stateDims(name, meta.shape, combined ? 1 : 0, seqAxis) });
        modes.add(pair.mode);
      } else {
        contract.recurrent.push({ input: name, output: pair.output, type, dims: stateDims(name, meta.shape, 0) });
      }
    } else {
      throw new RuntimeError("unsupported-model", `model input ${name} is not one the runtime knows how to feed (expected input_ids, attention_mask, position_ids, tree_attention_mask, past_*, tokenselect_cached_*)`);
    }
  }
  if (modes.size > 1) throw new RuntimeError("unsupported-model", "model mixes present.* and present_new.* outputs; a cache is either fully returned or fully append-only");
  if (modes.has("append")) {
    if (!contract.maskType || !contract.positionType) {
      throw new RuntimeError("unsupported-model", "an append-only model (present_new.* outputs) needs attention_mask and position_ids inputs: the runtime masks its unused capacity");
    }
    contract.kvMode = "append";
    if (contract.hasTreeMask) throw new RuntimeError("unsupported-model", "a tree_attention_mask covers past + new rows, but an append-only model attends over its whole buffer; compile tree attention without kv-append-only");
  }
  return contract;
}

function embedsDim(meta: ort.InferenceSession.TensorValueMetadata): number {
  const C = meta.shape[meta.shape.length - 1];
  if (meta.type !== "float32" || meta.shape.length !== 3 || typeof C !== "number") {
    throw new RuntimeError("unsupported-model", `model input inputs_embeds must be float32 [B, S, C] with a fixed C, got ${meta.type} [${meta.shape.join(", ")}]`);
  }
  return C;
}

/** Records the in-graph argmax/top-k outputs when the model has them with int64 ids and a fixed k. */
function readTopOutputs(session: ort.InferenceSession, contract: DecoderContract): void {
  const meta = (name: string) => session.outputMetadata.find((m) => m.name === name);
  const indices = meta(TOPK_INDICES_OUTPUT);
  const k = indices?.isTensor ? indices.shape[indices.shape.length - 1] : undefined;
  if (indices?.isTensor && indices.type === "int64" && typeof k === "number" && k > 0) contract.topkIndices = { name: TOPK_INDICES_OUTPUT, k };
  const argmax = meta(ARGMAX_OUTPUT);
  if (argmax?.isTensor && argmax.type === "int64") contract.argmax = ARGMAX_OUTPUT;
}

/** A selection cache layer's inputs come in pairs with their outputs; the fingerprint's size is fixed (the runtime feeds zeros for none). */
function readSelectionCacheInput(session: ort.InferenceSession, name: string, contract: DecoderContract): void {
  const [, kind, layerText] = SELECTION_CACHE_INPUT.exec(name)!;
  const layer = Number(layerText);
  for (const output of [selectionCacheName("fingerprint", layer), selectionCacheName("indices", layer), selectionCacheName("reused", layer)]) {
    if (!session.outputNames.includes(output)) throw new RuntimeError("unsupported-model", `model input ${name} has no ${output} output to carry the selection cache`);
  }
  if (kind !== "fingerprint") return;
  const size = tensorMeta(session.inputMetadata, name).shape[0];
  if (typeof size !== "number") throw new RuntimeError("unsupported-model", `model input ${name} needs a fixed size (the fingerprint H*D), got ${String(size)}`);
  contract.selectionCache.push({ layer, fingerprintSize: size });
}
