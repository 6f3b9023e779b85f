// A plain float32 forward pass of a llama2.c v0 checkpoint, ported from llama2.c's run.c with
// no onnxruntime and no pipec code: the independent reference the importer is checked against.

import { readFileSync } from "node:fs";

interface Weights {
  dim: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  vocab: number;
  seqLen: number;
  tokenEmbedding: Float32Array;
  rmsAtt: Float32Array;
  wq: Float32Array;
  wk: Float32Array;
  wv: Float32Array;
  wo: Float32Array;
  rmsFfn: Float32Array;
  w1: Float32Array;
  w2: Float32Array;
  w3: Float32Array;
  rmsFinal: Float32Array;
  wcls: Float32Array;
}

function readCheckpoint(path: string): Weights {
  const bytes = readFileSync(path);
  const header = new Int32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + 28));
  const [dim, hidden, layers, heads, kvHeads, signedVocab, seqLen] = header;
  const vocab = Math.abs(signedVocab);
  const floats = new Float32Array(bytes.buffer.slice(bytes.byteOffset + 28, bytes.byteOffset + bytes.byteLength));
  const kvDim = (dim * kvHeads) / heads;
  let at = 0;
  const take = (n: number) => floats.subarray(at, (at += n));
  const w = {
    tokenEmbedding: take(vocab * dim),
    rmsAtt: take(layers * dim),
    wq: take(layers * dim * dim),
    wk: take(layers * kvDim * dim),
    wv: take(layers * kvDim * dim),
    wo: take(layers * dim * dim),
    rmsFfn: take(layers * dim),
    w1: take(layers * hidden * dim),
    w2: take(layers * dim * hidden),
    w3: take(layers * hidden * dim),
    rmsFinal: take(dim),
  };
  take(seqLen * (dim / heads)); // freq_cis_real and freq_cis_imag: run.c recomputes them
  const wcls = signedVocab > 0 ? w.tokenEmbedding : take(vocab * dim);
  return { dim, hidden, layers, heads, kvHeads, vocab, seqLen, ...w, wcls };
}

function rmsnorm(out: Float32Array, x: Float32Array, weight: Float32Array): void {
  let ss = 0;
  for (let j = 0; j < x.length; j++) ss += x[j] * x[j];
  const scale = 1 / Math.sqrt(ss / x.length + 1e-5);
  for (let j = 0; j < x.length; j++) out[j] = weight[j] * (scale * x[j]);
}

/** out[d] = W[d, :] . x, W row-major [d, n]. */
function matmul(out: Float32Array, x: Float32Array, w: Float32Array, n: number, d: number): void {
  for (let i = 0; i < d; i++) {
    let v = 0;
    for (let j = 0; j < n; j++) v += w[i * n + j] * x[j];
    out[i] = v;
  }
}

function softmax(x: Float32Array, size: number): void {
  let max = x[0];
  for (let i = 1; i < size; i++) max = Math.max(max, x[i]);
  let sum = 0;
  for (let i = 0; i < size; i++) sum += x[i] = Math.exp(x[i] - max);
  for (let i = 0; i < size; i++) x[i] /= sum;
}

/** One token at a time with a KV cache, exactly as run.c's forward(). */
export class Llama2cForward {
  private readonly w: Weights;
  private readonly keyCache: Float32Array;
  private readonly valueCache: Float32Array;

  constructor(path: string) {
    this.w = readCheckpoint(path);
    const kvDim = (this.w.dim * this.w.kvHeads) / this.w.heads;
    this.keyCache = new Float32Array(this.w.layers * this.w.seqLen * kvDim);
    this.valueCache = new Float32Array(this.w.layers * this.w.seqLen * kvDim);
  }

  get vocab(): number {
    return this.w.vocab;
  }

  /** Logits for `token` at position `pos` (positions must be fed in order from 0). */
  forward(token: number, pos: number): Float32Array {
    const { dim, hidden, layers, heads, kvHeads, vocab, seqLen } = this.w;
    const headSize = dim / heads;
    const kvDim = (dim * kvHeads) / heads;
    const kvMul = heads / kvHeads;
    const x = this.w.tokenEmbedding.slice(token * dim, (token + 1) * dim);
    const xb = new Float32Array(dim);
    const xb2 = new Float32Array(dim);
    const hb = new Float32Array(hidden);
    const hb2 = new Float32Array(hidden);
    const q = new Float32Array(dim);
    const att = new Float32Array(seqLen);

    for (let l = 0; l < layers; l++) {
      rmsnorm(xb, x, this.w.rmsAtt.subarray(l * dim, (l + 1) * dim));
      const cacheAt = l * seqLen * kvDim + pos * kvDim;
      const k = this.keyCache.subarray(cacheAt, cacheAt + kvDim);
      const v = this.valueCache.subarray(cacheAt, cacheAt + kvDim);
      matmul(q, xb, this.w.wq.subarray(l * dim * dim), dim, dim);
      matmul(k, xb, this.w.wk.subarray(l * kvDim * dim), dim, kvDim);
      matmul(v, xb, this.w.wv.subarray(l * kvDim * dim), dim, kvDim);

      // RoPE: rotate adjacent pairs (i, i+1) of each head.
      for (let i = 0; i < dim; i += 2) {
        const freq = 1 / Math.pow(10000, (i % headSize) / headSize);
        const val = pos * freq;
        const fcr = Math.cos(val);
        const fci = Math.sin(val);
        for (const vec of i < kvDim ? [q, k] : [q]) {
          const v0 = vec[i];
          const v1 = vec[i + 1];
          vec[i] = v0 * fcr - v1 * fci;
          vec[i + 1] = v0 * fci + v1 * fcr;
        }
      }

      for (let h = 0; h < heads; h++) {
        const qh = q.subarray(h * headSize, (h + 1) * headSize);
        const kvHead = Math.floor(h / kvMul) * headSize;
        for (let t = 0; t <= pos; t++) {
          const kt = l * seqLen * kvDim + t * kvDim + kvHead;
          let score = 0;
          for (let i = 0; i < headSize; i++) score += qh[i] * this.keyCache[kt + i];
          att[t] = score / Math.sqrt(headSize);
        }
        softmax(att, pos + 1);
        const out = xb.subarray(h * headSize, (h + 1) * headSize);
        out.fill(0);
        for (let t = 0; t <= pos; t++) {
          const vt = l * seqLen * kvDim + t * kvDim + kvHead;
          for (let i = 0; i < headSize; i++) out[i] += att[t] * this.valueCache[vt + i];
        }
      }
      matmul(xb2, xb, this.w.wo.subarray(l * dim * dim), dim, dim);
      for (let i = 0; i < dim; i++) x[i] += xb2[i];

      rmsnorm(xb, x, this.w.rmsFfn.subarray(l * dim, (l + 1) * dim));
      matmul(hb, xb, this.w.w1.subarray(l * dim * hidden), dim, hidden);
      matmul(hb2, xb, this.w.w3.subarray(l * dim * hidden), dim, hidden);
      for (let i = 0; i < hidden; i++) hb[i] = (hb[i] / (1 + Math.exp(-hb[i]))) * hb2[i];
      matmul(xb, hb, this.w.w2.subarray(l * dim * hidden), hidden, dim);
      for (let i = 0; i < dim; i++) x[i] += xb[i];
    }
    rmsnorm(x, x, this.w.rmsFinal);
    const logits = new Float32Array(vocab);
    matmul(logits, x, this.w.wcls, dim, vocab);
    return logits;
  }
}
