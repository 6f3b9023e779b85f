import { existsSync, statSync } from "node:fs";
import { PipecError } from "../errors.ts";
import { FileSource } from "../onnx/byte-source.ts";
import { writeZooModel } from "../zoo/build.ts";
import { llamaConfig, type AttentionEncoding, type LlamaConfig } from "../zoo/config.ts";
import { inlineSink, type TensorSink, type WeightSource } from "../zoo/weights.ts";

/**
 * llama2.c "v0" checkpoints: a header of 7 int32 (dim, hidden_dim, n_layers, n_heads,
 * n_kv_heads, vocab_size, seq_len; a negative vocab_size means the classifier is stored
 * separately), then float32 arrays, matrices row-major [out, in]. llama2.c rotates adjacent
 * pairs, so the graph uses the interleaved rotary layout.
 */
const HEADER_BYTES = 7 * 4;

interface Layout {
  config: LlamaConfig;
  /** Byte offset and element count of each array, in file order. */
  arrays: Map<string, { offset: number; count: number }>;
}

export interface Llama2cImport {
  modelPath: string;
  config: LlamaConfig;
  parameters: number;
}

/** Converts a checkpoint into `<outDir>/model.onnx` (Optimum layout) and `<outDir>/config.json`. */
export function importLlama2c(file: string, outDir: string, opts: { encoding?: AttentionEncoding } = {}): Llama2cImport {
  if (!existsSync(file) || !statSync(file).isFile()) throw new PipecError("not-found", `${file}: no such file`);
  const source = new FileSource(file);
  try {
    const layout = readLayout(file, source);
    const written = writeZooModel(layout.config, outDir, {
      encoding: opts.encoding,
      weights: (sink) => new CheckpointWeights(source, layout, sink ?? inlineSink),
    });
    return { ...written, config: layout.config };
  } finally {
    source.close();
  }
}

function readLayout(file: string, source: FileSource): Layout {
  const fail = (why: string) => new PipecError("invalid-checkpoint", `${file}: not a llama2.c v0 checkpoint: ${why}`);
  if (source.size < HEADER_BYTES) throw fail(`${source.size} bytes is shorter than the 28-byte header`);
  const header = new DataView(Uint8Array.from(source.read(0, HEADER_BYTES)).buffer);
  const [dim, hidden, layers, heads, kvHeads, signedVocab, seqLen] = Array.from({ length: 7 }, (_, i) => header.getInt32(i * 4, true));
  const vocab = Math.abs(signedVocab);
  const fields = { dim, hidden_dim: hidden, n_layers: layers, n_heads: heads, n_kv_heads: kvHeads, vocab_size: vocab, seq_len: seqLen };
  for (const [name, v] of Object.entries(fields)) if (v <= 0) throw fail(`header field ${name} is ${v}`);
  if (dim % heads !== 0 || heads % kvHeads !== 0) throw fail(`dim ${dim}, n_heads ${heads}, n_kv_heads ${kvHeads} do not divide evenly`);

  const headDim = dim / heads;
  const kvDim = kvHeads * headDim;
  const shared = signedVocab > 0;
  const sizes: [string, number][] = [
    ["token_embedding", vocab * dim],
    ["rms_att", layers * dim],
    ["wq", layers * dim * dim],
    ["wk", layers * kvDim * dim],
    ["wv", layers * kvDim * dim],
    ["wo", layers * dim * dim],
    ["rms_ffn", layers * dim],
    ["w1", layers * hidden * dim],
    ["w2", layers * dim * hidden],
    ["w3", layers * hidden * dim],
    ["rms_final", dim],
    ["freq_cis_real", (seqLen * headDim) / 2],
    ["freq_cis_imag", (seqLen * headDim) / 2],
    ...(shared ? [] : ([["wcls", vocab * dim]] as [string, number][])),
  ];
  const arrays = new Map<string, { offset: number; count: number }>();
  let offset = HEADER_BYTES;
  for (const [name, count] of sizes) {
    arrays.set(name, { offset, count });
    offset += count * 4;
  }
  if (offset !== source.size) throw fail(`the header (${Object.entries(fields).map(([k, v]) => `${k}=${v}`).join(", ")}) implies ${offset} bytes, the file has ${source.size}`);

  const config = llamaConfig({
    vocabSize: vocab,
    hidden: dim,
    layers,
    heads,
    kvHeads,
    intermediate: hidden,
    maxPositions: seqLen,
    ropeTheta: 10000,
    rotary: "interleaved",
    rmsEps: 1e-5,
    tiedEmbeddings: shared,
    bosTokenId: 1,
    eosTokenId: 2,
  });
  return { config, arrays };
}

/** Serves the checkpoint's arrays under the builders' names, matrices transposed to [in, out]. */
class CheckpointWeights implements WeightSource {
  constructor(
    private readonly source: FileSource,
    private readonly layout: Layout,
    private readonly sink: TensorSink,
  ) {}

  weight(name: string, dims: readonly number[]): ReturnType<TensorSink> {
    const layer = /^model\.layers\.(\d+)\.(.+)\.weight$/.exec(name);
    if (layer) {
      const [array, transposed] = LAYER_ARRAYS[layer[2]] ?? this.unknown(name);
      return this.sink(name, dims, this.read(array, Number(layer[1]), dims, transposed));
    }
    if (name === "model.embed_tokens.weight") return this.sink(name, dims, this.read("token_embedding", 0, dims, false));
    if (name === "model.norm.weight") return this.sink(name, dims, this.read("rms_final", 0, dims, false));
    if (name === "lm_head.weight") return this.sink(name, dims, this.read("wcls", 0, dims, true));
    return this.unknown(name);
  }

  /** Slice `index` of `array` holding one tensor of `dims`, transposed from [out, in] when asked. */
  private read(array: string, index: number, dims: readonly number[], transposed: boolean): Float32Array {
    const count = dims.reduce((a, d) => a * d, 1);
    const { offset } = this.layout.arrays.get(array)!;
    const values = new Float32Array(count);
    new Uint8Array(values.buffer).set(this.source.read(offset + index * count * 4, count * 4));
    return transposed ? transpose(values, dims[1], dims[0]) : values;
  }

  private unknown(name: string): never {
    throw new Error(`llama2.c checkpoints have no weight for '${name}'`);
  }
}

/** Which checkpoint array holds each per-layer weight, and whether it is stored [out, in]. */
const LAYER_ARRAYS: Record<string, [string, boolean]> = {
  input_layernorm: ["rms_att", false],
  "self_attn.q_proj": ["wq", true],
  "self_attn.k_proj": ["wk", true],
  "self_attn.v_proj": ["wv", true],
  "self_attn.o_proj": ["wo", true],
  post_attention_layernorm: ["rms_ffn", false],
  "mlp.gate_proj": ["w1", true],
  "mlp.down_proj": ["w2", true],
  "mlp.up_proj": ["w3", true],
};

/** [rows, cols] -> [cols, rows]. */
function transpose(m: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(m.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = m[r * cols + c];
  return out;
}

