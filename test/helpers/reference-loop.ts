// Plain greedy decoding over onnxruntime-node, written the way a transformers.js
// user drives an Optimum-style decoder export: full logits [1, S, V] come back to the host,
// present.* is fed back as past_key_values.*, the attention mask is all ones and
// position_ids are the absolute positions, built as fresh arrays each step. No pipec code is
// involved on purpose: this is the baseline that compiled pipelines are checked against
// (greedyReference) and benchmarked against (runReference, from bench/).

import * as ort from "onnxruntime-node";

type IdType = "int64" | "int32";

/** Integer tensor of ids/positions in whichever width the model declares. */
function intTensor(type: IdType, values: number[], dims: number[]): ort.Tensor {
  return type === "int64"
    ? new ort.Tensor("int64", BigInt64Array.from(values, (v) => BigInt(v)), dims)
    : new ort.Tensor("int32", Int32Array.from(values), dims);
}

function tensorMeta(session: ort.InferenceSession, name: string): ort.InferenceSession.TensorValueMetadata {
  const meta = session.inputMetadata.find((m) => m.name === name);
  if (!meta || !meta.isTensor) throw new Error(`model input ${name} is not a tensor`);
  return meta;
}

function idType(session: ort.InferenceSession, name: string): IdType {
  const { type } = tensorMeta(session, name);
  if (type !== "int64" && type !== "int32") throw new Error(`${name}: unsupported id type ${type}`);
  return type;
}

/** Past K/V of length P = 0 with the model's declared [B, Hkv, P, D] layout. */
function emptyPast(session: ort.InferenceSession, name: string): ort.Tensor {
  const { type, shape } = tensorMeta(session, name);
  // Hkv and D are fixed numbers in an export; B and P are symbolic.
  const dims = shape.map((d, axis) => (axis === 0 ? 1 : typeof d === "number" ? d : 0));
  if (type === "float32") return new ort.Tensor("float32", new Float32Array(0), dims);
  if (type === "float16") return new ort.Tensor("float16", new Uint16Array(0), dims);
  throw new Error(`${name}: unsupported past type ${type}`);
}

function argmaxLastPosition(logits: ort.Tensor): number {
  if (logits.type !== "float32") throw new Error(`logits: expected float32, got ${logits.type}`);
  const [, S, V] = logits.dims as [number, number, number]; // [B=1, S, V]
  const data = logits.data as Float32Array;
  const offset = (S - 1) * V;
  let best = 0;
  for (let v = 1; v < V; v++) if (data[offset + v] > data[offset + best]) best = v;
  return best;
}

/** A reference run: its tokens and where its time went. */
export interface ReferenceRun {
  tokens: number[];
  prefillMs: number;
  /** Wall time of the decode steps (every token after the first). */
  decodeMs: number;
  sessionRunMs: number;
  /** CPU time of this process over the decode steps (all threads). */
  decodeCpuMs: number;
}

/**
 * Greedy continuation of `prompt` (batch 1): one prefill over the whole prompt,
 * then one decode step per token. Returns the `maxNewTokens` generated ids.
 */
export async function greedyReference(modelPath: string, prompt: readonly number[], maxNewTokens: number): Promise<number[]> {
  return (await runReference(modelPath, prompt, maxNewTokens)).tokens;
}

/** `greedyReference`, timed; `session`: options such as the thread counts a benchmark fixes. */
export async function runReference(modelPath: string, prompt: readonly number[], maxNewTokens: number, session: ort.InferenceSession.SessionOptions = {}): Promise<ReferenceRun> {
  return withSession(await ort.InferenceSession.create(modelPath, session), (s) => decode(s, prompt, maxNewTokens));
}

async function withSession<T>(session: ort.InferenceSession, use: (session: ort.InferenceSession) => Promise<T>): Promise<T> {
  try {
    return await use(session);
  } finally {
    await session.release();
  }
}

async function decode(session: ort.InferenceSession, prompt: readonly number[], maxNewTokens: number): Promise<ReferenceRun> {
  const inputs = new Set(session.inputNames);
  const pastNames = session.inputNames.filter((n) => n.startsWith("past_key_values."));
  const idsType = idType(session, "input_ids");
  const maskType = inputs.has("attention_mask") ? idType(session, "attention_mask") : undefined;
  const posType = inputs.has("position_ids") ? idType(session, "position_ids") : undefined;

  let past: Record<string, ort.Tensor> = {};
  for (const name of pastNames) past[name] = emptyPast(session, name);

  const generated: number[] = [];
  let tokens = [...prompt]; // what this step feeds: the prompt, then the last token
  let pastLength = 0; // P
  let [sessionRunMs, prefillMs] = [0, 0];
  let decodeCpu = process.cpuUsage();
  const start = performance.now();
  while (generated.length < maxNewTokens) {
    const S = tokens.length;
    const feeds: Record<string, ort.Tensor> = { ...past, input_ids: intTensor(idsType, tokens, [1, S]) };
    if (maskType) feeds.attention_mask = intTensor(maskType, new Array(pastLength + S).fill(1), [1, pastLength + S]);
    if (posType) {
      const positions = Array.from({ length: S }, (_, i) => pastLength + i);
      feeds.position_ids = intTensor(posType, positions, [1, S]);
    }
    // Merged (with/without past) decoder exports select their branch with this flag.
    if (inputs.has("use_cache_branch")) feeds.use_cache_branch = new ort.Tensor("bool", [pastLength > 0], [1]);

    const t0 = performance.now();
    const out = await session.run(feeds);
    sessionRunMs += performance.now() - t0;
    const next = argmaxLastPosition(out.logits!);
    generated.push(next);
    if (generated.length === 1) {
      prefillMs = performance.now() - start;
      decodeCpu = process.cpuUsage();
    }

    past = {};
    for (const name of pastNames) {
      const present = out[name.replace(/^past_key_values\./, "present.")];
      if (!present) throw new Error(`model has ${name} but no matching present.* output`);
      past[name] = present;
    }
    pastLength += S;
    tokens = [next];
  }
  const cpu = process.cpuUsage(decodeCpu);
  return { tokens: generated, prefillMs, decodeMs: performance.now() - start - prefillMs, sessionRunMs, decodeCpuMs: (cpu.user + cpu.system) / 1000 };
}
