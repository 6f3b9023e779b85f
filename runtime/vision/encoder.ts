// A vision encoder with its projector: pixel_values [B, 3, H, W] -> visual tokens [B, Nv, C] in
// the decoder's embedding space (LLaVA's image features after the multi-modal projector).
// An optional second output [B, Nv] carries the last layer's [CLS] -> patch attention, which
// importance-guided pruning (ToDRE's seed, GlobalCom2's scores) reads.
import { dirname, join } from "node:path";
import * as ort from "onnxruntime-node";
import { CLS_ATTENTION_OUTPUT, PIXEL_VALUES, VISUAL_TOKEN_DISTANCES_OUTPUT } from "../contract-names.ts";
import { openSession, type ResolvedDevice, type SessionOptions } from "../device.ts";
import { RuntimeError } from "../errors.ts";
import type { RgbImage } from "./image.ts";
import { preprocess, readPreprocessorConfig, resizeBilinear, type PreprocessorConfig } from "./preprocess.ts";


export interface VisualTokens {
  /** [tokens * dim], row-major. */
  features: Float32Array;
  tokens: number;
  dim: number;
  /** [tokens]: how much the encoder's [CLS] attends to each patch (when the encoder outputs it). */
  clsAttention?: Float32Array;
  /** [tokens * tokens]: cosine distances between the tokens (when the encoder was compiled to output them). */
  distances?: Float32Array;
  /** Multi-crop input: a thumbnail then grid x grid crops, tokens / (1 + grid^2) tokens each, concatenated. */
  grid?: number;
}

export class VisionEncoder {
  /** Milliseconds spent inside session.run. */
  runMs = 0;

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly preprocessor: PreprocessorConfig,
    /** Where it runs; the pipeline's other models are opened there too. */
    readonly device: ResolvedDevice,
    /** C of its visual tokens. */
    readonly dim: number,
    private readonly featuresOutput: string,
  ) {}

  /** Opens the encoder and the preprocessor_config.json beside it. */
  static async open(path: string, options: SessionOptions = {}): Promise<VisionEncoder> {
    const preprocessor = readPreprocessorConfig(join(dirname(path), "preprocessor_config.json"));
    const { session, device } = await openSession(path, options);
    const features = session.outputMetadata.find((m) => m.name !== CLS_ATTENTION_OUTPUT && m.name !== VISUAL_TOKEN_DISTANCES_OUTPUT);
    const C = features?.isTensor && features.shape.length === 3 ? features.shape[2] : undefined;
    if (!session.inputNames.includes(PIXEL_VALUES) || !features || typeof C !== "number") {
      await session.release();
      throw new RuntimeError("unsupported-model", `${path} is not a vision encoder (pixel_values [B, 3, H, W] -> visual tokens [B, Nv, C])`);
    }
    return new VisionEncoder(session, preprocessor, device, C, features.name);
  }

  async encode(image: RgbImage): Promise<VisualTokens> {
    const pixels = preprocess(image, this.preprocessor);
    const feeds = { [PIXEL_VALUES]: new ort.Tensor("float32", pixels.data, [1, 3, pixels.height, pixels.width]) };
    const t0 = performance.now();
    const out = await this.session.run(feeds);
    this.runMs += performance.now() - t0;
    const features = out[this.featuresOutput]!;
    const tokens: VisualTokens = { features: features.data as Float32Array, tokens: features.dims[1]!, dim: features.dims[2]! };
    const cls = out[CLS_ATTENTION_OUTPUT];
    if (cls) tokens.clsAttention = cls.data as Float32Array;
    const distances = out[VISUAL_TOKEN_DISTANCES_OUTPUT];
    if (distances) tokens.distances = distances.data as Float32Array;
    return tokens;
  }

  /**
   * LLaVA-NeXT-style multi-crop encoding: a thumbnail of the whole image (the preprocessor's
   * size), then the image at `grid` times that size cut into grid x grid crops, row-major, each
   * encoded on its own; their tokens (and [CLS] attention) concatenated in that order.
   */
  async encodeCrops(image: RgbImage, grid: number): Promise<VisualTokens> {
    const views = [await this.encode(image)];
    const { height, width } = "height" in this.preprocessor.size ? this.preprocessor.size : { height: this.preprocessor.size.shortestEdge, width: this.preprocessor.size.shortestEdge };
    const large = resizeBilinear(image, width * grid, height * grid);
    for (let cy = 0; cy < grid; cy++) {
      for (let cx = 0; cx < grid; cx++) {
        const rgb = new Uint8Array(width * height * 3);
        for (let y = 0; y < height; y++) {
          for (let x = 0; x < width * 3; x++) rgb[y * width * 3 + x] = Math.round(large[((cy * height + y) * width * grid + cx * width) * 3 + x]!);
        }
        views.push(await this.encode({ width, height, rgb }));
      }
    }
    const concat = (parts: (Float32Array | undefined)[]) => (parts.every((p) => p) ? Float32Array.from(parts.flatMap((p) => Array.from(p!))) : undefined);
    const tokens: VisualTokens = { features: concat(views.map((v) => v.features))!, tokens: views.reduce((a, v) => a + v.tokens, 0), dim: this.dim, grid };
    const cls = concat(views.map((v) => v.clsAttention));
    if (cls) tokens.clsAttention = cls;
    return tokens;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
