// Images in: PNG (pngjs) and JPEG (jpeg-js), both pure JavaScript, decoded to 8-bit RGB.
import { readFileSync } from "node:fs";
import jpeg from "jpeg-js";
import { PNG } from "pngjs";
import { RuntimeError } from "../errors.ts";

export interface RgbImage {
  width: number;
  height: number;
  /** [height * width * 3], row-major RGB. */
  rgb: Uint8Array;
}

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47];
const JPEG_MAGIC = [0xff, 0xd8, 0xff];

export function loadImage(path: string): RgbImage {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch {
    throw new RuntimeError("image-not-found", `cannot read image ${path}`);
  }
  return decodeImage(bytes, path);
}

export function decodeImage(bytes: Uint8Array, name = "image"): RgbImage {
  const starts = (magic: number[]) => magic.every((b, i) => bytes[i] === b);
  let rgba: { width: number; height: number; data: Uint8Array };
  try {
    if (starts(PNG_MAGIC)) rgba = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    else if (starts(JPEG_MAGIC)) rgba = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true });
    else throw new RuntimeError("bad-image", `${name} is neither a PNG nor a JPEG file`);
  } catch (e) {
    if (e instanceof RuntimeError) throw e;
    throw new RuntimeError("bad-image", `cannot decode ${name}: ${(e as Error).message}`);
  }
  // PNG.sync.read composites nothing: transparent pixels keep their colour, as PIL's convert("RGB") does.
  const { width, height, data } = rgba;
  const rgb = new Uint8Array(width * height * 3);
  for (let p = 0; p < width * height; p++) {
    rgb[p * 3] = data[p * 4]!;
    rgb[p * 3 + 1] = data[p * 4 + 1]!;
    rgb[p * 3 + 2] = data[p * 4 + 2]!;
  }
  return { width, height, rgb };
}
