// The text half of a decoder fed inputs_embeds: a model mapping input_ids [B, S] to
// inputs_embeds [B, S, C] (Optimum and transformers.js export it as embed_tokens.onnx beside
// the decoder), so text tokens and visual tokens reach the decoder the same way.
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import * as ort from "onnxruntime-node";
import { openSession, type SessionOptions } from "./device.ts";
import { RuntimeError } from "./errors.ts";

export const EMBED_TOKENS_FILE = "embed_tokens.onnx";

export class TokenEmbedder {
  /** Milliseconds spent inside session.run. */
  runMs = 0;

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly dim: number,
  ) {}

  /** Opens `embed_tokens.onnx` beside `decoderPath`, or the file given. */
  static async open(decoderPath: string, options: SessionOptions = {}, path = join(dirname(decoderPath), EMBED_TOKENS_FILE)): Promise<TokenEmbedder> {
    if (!existsSync(path)) throw new RuntimeError("model-not-found", `the decoder takes inputs_embeds, so it needs its token embedding model ${path}, which does not exist`);
    const { session } = await openSession(path, options);
    const input = session.inputMetadata.find((m) => m.name === "input_ids");
    const output = session.outputMetadata[0];
    const C = output?.isTensor ? output.shape[output.shape.length - 1] : undefined;
    if (!input?.isTensor || input.type !== "int64" || !output?.isTensor || output.type !== "float32" || typeof C !== "number") {
      await session.release();
      throw new RuntimeError("unsupported-model", `${path} is not a token embedding model (input_ids int64 [B, S] -> float32 [B, S, C])`);
    }
    return new TokenEmbedder(session, C);
  }

  /** Embeddings of `tokens`, [S * C] row-major. */
  async embed(tokens: readonly number[]): Promise<Float32Array> {
    const ids = new ort.Tensor("int64", BigInt64Array.from(tokens, BigInt), [1, tokens.length]);
    const t0 = performance.now();
    const out = await this.session.run({ input_ids: ids });
    this.runMs += performance.now() - t0;
    return out[this.session.outputNames[0]!]!.data as Float32Array;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
