// Logits processors: functions that rewrite one position's logits in place (float32, V
// entries). They compose left to right; a masked-out token gets -Infinity. Each factory
// allocates its scratch once, for the vocabulary size, so applying one allocates nothing.
import { RuntimeError } from "../errors.ts";

export interface ProcessorContext {
  /** Prompt and generated tokens so far. */
  readonly tokens: readonly number[];
}

export type LogitsProcessor = (logits: Float32Array, context: ProcessorContext) => void;

export function composeProcessors(...processors: LogitsProcessor[]): LogitsProcessor {
  return (logits, context) => {
    for (const p of processors) p(logits, context);
  };
}

export function temperature(t: number): LogitsProcessor {
  if (!(t > 0)) throw new RuntimeError("bad-sampling", `temperature must be > 0, got ${t}`);
  return (logits) => {
    for (let i = 0; i < logits.length; i++) logits[i] /= t;
  };
}

/** CTRL-style penalty (as in transformers): each token already in the context is made less likely once. */
export function repetitionPenalty(penalty: number, vocabSize: number): LogitsProcessor {
  if (!(penalty > 0)) throw new RuntimeError("bad-sampling", `repetition penalty must be > 0, got ${penalty}`);
  const stamp = new Uint32Array(vocabSize);
  let call = 0;
  return (logits, { tokens }) => {
    call++;
    for (const token of tokens) {
      if (token >= logits.length || stamp[token] === call) continue;
      stamp[token] = call;
      logits[token] = logits[token] > 0 ? logits[token] / penalty : logits[token] * penalty;
    }
  };
}

/** Keeps the k largest logits (and any tied with the k-th). */
export function topK(k: number, vocabSize: number): LogitsProcessor {
  if (!Number.isInteger(k) || k < 1) throw new RuntimeError("bad-sampling", `top_k must be a positive integer, got ${k}`);
  const scratch = new Float32Array(vocabSize);
  return (logits) => {
    if (k >= logits.length) return;
    scratch.set(logits);
    const threshold = kthLargest(scratch.subarray(0, logits.length), k);
    for (let i = 0; i < logits.length; i++) if (logits[i] < threshold) logits[i] = -Infinity;
  };
}

/** Keeps the smallest set of most likely tokens whose probabilities sum to at least p (nucleus sampling). */
export function topP(p: number, vocabSize: number): LogitsProcessor {
  if (!(p > 0 && p <= 1)) throw new RuntimeError("bad-sampling", `top_p must be in (0, 1], got ${p}`);
  const order = new Int32Array(vocabSize);
  return (logits) => {
    if (p === 1) return;
    let n = 0;
    let max = -Infinity;
    for (let i = 0; i < logits.length; i++) {
      if (logits[i] === -Infinity) continue;
      order[n++] = i;
      if (logits[i] > max) max = logits[i];
    }
    const candidates = order.subarray(0, n).sort((a, b) => logits[b] - logits[a]);
    let total = 0;
    for (let j = 0; j < n; j++) total += Math.exp(logits[candidates[j]] - max);
    let mass = 0;
    let keep = n;
    for (let j = 0; j < n; j++) {
      mass += Math.exp(logits[candidates[j]] - max) / total;
      if (mass >= p) {
        keep = j + 1;
        break;
      }
    }
    for (let j = keep; j < n; j++) logits[candidates[j]] = -Infinity;
  };
}

/** k-th largest value (1-based) by quickselect; reorders `values`. */
function kthLargest(values: Float32Array, k: number): number {
  let lo = 0;
  let hi = values.length - 1;
  const target = k - 1;
  while (lo < hi) {
    const pivot = values[(lo + hi) >>> 1];
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (values[i] > pivot) i++;
      while (values[j] < pivot) j--;
      if (i <= j) {
        const t = values[i];
        values[i] = values[j];
        values[j] = t;
        i++;
        j--;
      }
    }
    if (target <= j) hi = j;
    else if (target >= i) lo = i;
    else break;
  }
  return values[target];
}
