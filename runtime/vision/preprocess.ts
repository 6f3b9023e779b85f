// Pixels for a vision encoder, as the model's preprocessor_config.json (a transformers image
// processor's settings) describes them: resize, optional centre crop, rescale, normalise, CHW.
import { existsSync, readFileSync } from "node:fs";
import { RuntimeError } from "../errors.ts";
import type { RgbImage } from "./image.ts";

export interface PreprocessorConfig {
  /** Resize target: exact height and width, or the shortest edge (aspect kept). */
  size: { height: number; width: number } | { shortestEdge: number };
  crop?: { height: number; width: number };
  rescaleFactor: number;
  mean: [number, number, number];
  std: [number, number, number];
}

export function readPreprocessorConfig(path: string): PreprocessorConfig {
  if (!existsSync(path)) throw new RuntimeError("model-not-found", `the vision encoder needs its image settings ${path}, which does not exist`);
  const json = JSON.parse(readFileSync(path, "utf8")) as Record<string, any>;
  const size = json.size ?? {};
  const resize = typeof size.shortest_edge === "number" ? { shortestEdge: size.shortest_edge } : typeof size.height === "number" && typeof size.width === "number" ? { height: size.height, width: size.width } : undefined;
  if (json.do_resize === false || !resize) throw new RuntimeError("unsupported-model", `${path}: pipec needs a resize target (size.height/width or size.shortest_edge)`);
  const crop = json.do_center_crop && json.crop_size ? { height: json.crop_size.height, width: json.crop_size.width } : undefined;
  const three = (v: unknown, fallback: number): [number, number, number] => (Array.isArray(v) && v.length === 3 ? (v as [number, number, number]) : [fallback, fallback, fallback]);
  const normalize = json.do_normalize !== false;
  return {
    size: resize,
    ...(crop && { crop }),
    rescaleFactor: json.do_rescale === false ? 1 : (json.rescale_factor ?? 1 / 255),
    mean: normalize ? three(json.image_mean, 0) : [0, 0, 0],
    std: normalize ? three(json.image_std, 1) : [1, 1, 1],
  };
}

/** pixel_values [3, H, W] (float32, channels first) for `image`. */
export function preprocess(image: RgbImage, config: PreprocessorConfig): { data: Float32Array; height: number; width: number } {
  const { height, width } = resizedSize(image, config.size);
  const resized = resizeBilinear(image, width, height);
  const crop = config.crop ?? { height, width };
  const top = Math.max(0, Math.floor((height - crop.height) / 2));
  const left = Math.max(0, Math.floor((width - crop.width) / 2));
  const out = new Float32Array(3 * crop.height * crop.width);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < crop.height; y++) {
      for (let x = 0; x < crop.width; x++) {
        const v = resized[((y + top) * width + (x + left)) * 3 + c]! * config.rescaleFactor;
        out[(c * crop.height + y) * crop.width + x] = (v - config.mean[c]!) / config.std[c]!;
      }
    }
  }
  return { data: out, height: crop.height, width: crop.width };
}

function resizedSize(image: RgbImage, size: PreprocessorConfig["size"]): { height: number; width: number } {
  if ("height" in size) return size;
  const scale = size.shortestEdge / Math.min(image.width, image.height);
  return { height: Math.round(image.height * scale), width: Math.round(image.width * scale) };
}

/** Bilinear resampling with half-pixel centres; a same-size resize returns the pixels unchanged. */
export function resizeBilinear(image: RgbImage, width: number, height: number): Float32Array {
  const out = new Float32Array(width * height * 3);
  const sx = image.width / width;
  const sy = image.height / height;
  for (let y = 0; y < height; y++) {
    const fy = Math.min(image.height - 1, Math.max(0, (y + 0.5) * sy - 0.5));
    const y0 = Math.floor(fy);
    const y1 = Math.min(image.height - 1, y0 + 1);
    const wy = fy - y0;
    for (let x = 0; x < width; x++) {
      const fx = Math.min(image.width - 1, Math.max(0, (x + 0.5) * sx - 0.5));
      const x0 = Math.floor(fx);
      const x1 = Math.min(image.width - 1, x0 + 1);
      const wx = fx - x0;
      for (let c = 0; c < 3; c++) {
        const p = (yy: number, xx: number) => image.rgb[(yy * image.width + xx) * 3 + c]!;
        const top = p(y0, x0) * (1 - wx) + p(y0, x1) * wx;
        const bottom = p(y1, x0) * (1 - wx) + p(y1, x1) * wx;
        out[(y * width + x) * 3 + c] = top * (1 - wy) + bottom * wy;
      }
    }
  }
  return out;
}
