// A vision-language pipeline: image -> vision encoder (+ projector) -> visual token pruning ->
// decoder fed inputs_embeds, with the text embeddings around the prompt's image token.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { DecoderModel } from "../decoder.ts";
import type { SessionOptions } from "../device.ts";
import { RuntimeError } from "../errors.ts";
import { Generator, type EndEvent, type GenerateOptions, type TokenEvent } from "../generate.ts";
import type { GenerationStats } from "../metrics.ts";
import { loadTokenizer } from "../tokenizer.ts";
import { VisionEncoder } from "./encoder.ts";
import { loadImage, type RgbImage } from "./image.ts";
import { cropGrid, dropsVisualRowsAfterPrompt, gatherTokens, selectVisualTokens, type PruneConfig } from "./prune/index.ts";

export interface VisionLanguageFiles {
  visionEncoder: string;
  /** A decoder taking inputs_embeds, with embed_tokens.onnx and config.json (image_token_index) beside it. */
  decoder: string;
  tokenizer?: string;
}

export interface VisionStats {
  visualTokens: number;
  keptTokens: number;
  encodeMs: number;
  pruneMs: number;
}

/** The end event; its timeToFirstTokenMs runs from the image going in, so it includes the encoder and pruning. */
export type VisionEndEvent = EndEvent & { stats: GenerationStats & VisionStats };
export type VisionGenerationEvent = TokenEvent | VisionEndEvent;

export interface VisionGenerateOptions extends Omit<GenerateOptions, "image"> {
  prune?: PruneConfig;
}

export class VisionLanguageModel {
  private constructor(
    readonly encoder: VisionEncoder,
    readonly decoder: DecoderModel,
    readonly generator: Generator,
    /** The prompt token the image replaces. */
    readonly imageTokenId: number,
    private readonly bosTokenId: number | undefined,
  ) {}

  static async open(files: VisionLanguageFiles, options: SessionOptions = {}): Promise<VisionLanguageModel> {
    const config = readImageTokenConfig(files.decoder);
    const encoder = await VisionEncoder.open(files.visionEncoder, options);
    let decoder: DecoderModel | undefined;
    try {
      // "auto" was resolved (and any fallback reported) once, for the encoder.
      decoder = await DecoderModel.open(files.decoder, { ...options, device: encoder.device });
      if (decoder.contract.embedsDim !== encoder.dim) {
        throw new RuntimeError("unsupported-model", `the vision encoder gives ${encoder.dim}-wide visual tokens but the decoder's inputs_embeds is ${decoder.contract.embedsDim ?? "absent (it takes input_ids)"}${decoder.contract.embedsDim ? " wide" : ""}`);
      }
      const generator = new Generator(decoder, files.tokenizer ? loadTokenizer(files.tokenizer) : undefined);
      return new VisionLanguageModel(encoder, decoder, generator, config.imageTokenId, config.bosTokenId);
    } catch (e) {
      await encoder.release();
      await decoder?.release();
      throw e;
    }
  }

  /** Answers `prompt` about `image` (a path or decoded pixels). Without an image token in the prompt, the image goes first (after BOS). */
  async *stream(image: string | RgbImage, prompt: string | readonly number[], options: VisionGenerateOptions = {}): AsyncGenerator<VisionGenerationEvent> {
    const start = performance.now();
    const pixels = typeof image === "string" ? loadImage(image) : image;
    const prune = options.prune ?? { method: "none" };
    const grid = cropGrid(prune);
    const tokens = grid > 1 ? await this.encoder.encodeCrops(pixels, grid) : await this.encoder.encode(pixels);
    const encoded = performance.now();
    const kept = selectVisualTokens(tokens, prune);
    const features = gatherTokens(tokens, kept);
    const pruned = performance.now();
    const { prune: _, ...generate } = options;
    let firstToken: number | undefined;
    for await (const event of this.generator.stream(this.withImageToken(prompt), { ...generate, image: { features, kept, tokens: tokens.tokens, tokenId: this.imageTokenId, dropAfterPrompt: dropsVisualRowsAfterPrompt(prune) } })) {
      if (event.kind === "token") {
        firstToken ??= performance.now();
        yield event;
        continue;
      }
      const vision: VisionStats = { visualTokens: tokens.tokens, keptTokens: kept.length, encodeMs: encoded - start, pruneMs: pruned - encoded };
      yield { ...event, stats: { ...event.stats, ...vision, timeToFirstTokenMs: (firstToken ?? performance.now()) - start, totalMs: performance.now() - start } };
    }
  }

  async run(image: string | RgbImage, prompt: string | readonly number[], options: VisionGenerateOptions = {}): Promise<VisionEndEvent> {
    for await (const event of this.stream(image, prompt, options)) if (event.kind === "end") return event;
    throw new Error("generation ended without an end event");
  }

  private withImageToken(prompt: string | readonly number[]): number[] {
    let ids: number[];
    if (typeof prompt === "string") {
      if (!this.generator.tokenizer) throw new RuntimeError("no-tokenizer", "a text prompt needs a tokenizer (or pass token ids)");
      ids = this.generator.tokenizer.encode(prompt);
    } else ids = [...prompt];
    if (ids.includes(this.imageTokenId)) return ids;
    const at = ids[0] === this.bosTokenId ? 1 : 0;
    return [...ids.slice(0, at), this.imageTokenId, ...ids.slice(at)];
  }

  async release(): Promise<void> {
    await this.encoder.release();
    await this.decoder.release();
  }
}

/** image_token_index (LLaVA's config.json; image_token_id in newer exports) and bos_token_id from config.json beside the decoder. */
function readImageTokenConfig(decoderPath: string): { imageTokenId: number; bosTokenId?: number } {
  const path = join(dirname(decoderPath), "config.json");
  const config = existsSync(path) ? (JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>) : {};
  const id = config["image_token_index"] ?? config["image_token_id"];
  if (typeof id !== "number") throw new RuntimeError("unsupported-model", `${path} names no image token (image_token_index), so the image has no place in the prompt`);
  const bos = config["bos_token_id"];
  return { imageTokenId: id, ...(typeof bos === "number" && { bosTokenId: bos }) };
}
