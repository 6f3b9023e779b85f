import { readFileSync } from "node:fs";
import { PipecError } from "./errors.ts";

/** Bytes sampled to tell text from binary: enough to see a protobuf's first fields. */
const SAMPLE = 4096;

/**
 * Whether the bytes look like text: valid UTF-8 without NUL or other control bytes than tab, CR,
 * LF and form feed. A .pipe file must be text; an ONNX model, whose first byte is a protobuf tag
 * followed by varints, never is.
 */
export function looksLikeText(bytes: Uint8Array): boolean {
  const sample = bytes.subarray(0, SAMPLE);
  for (const b of sample) if (b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d && b !== 0x0c) return false;
  // A multi-byte character cut at the sample's end is still text.
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(sample.length === bytes.length ? sample : trimPartialCharacter(sample));
    return true;
  } catch {
    return false;
  }
}

function trimPartialCharacter(bytes: Uint8Array): Uint8Array {
  let end = bytes.length;
  for (let i = 0; i < 3 && end > 0 && (bytes[end - 1]! & 0xc0) === 0x80; i++) end--;
  if (end > 0 && bytes[end - 1]! >= 0xc0) end--;
  return bytes.subarray(0, end);
}

/** Pipelines are a few kilobytes; past this a file is some other text, and checking it would take long. */
export const MAX_PIPE_BYTES = 256 * 1024;

/**
 * The text of a .pipe file, or a one-line error before any parsing when the file is of another
 * kind: a model given where a pipeline is expected would otherwise be lexed into thousands of errors.
 */
export function readPipeText(file: string): string {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new PipecError("not-found", `${file}: ${code === "ENOENT" ? "no such file" : code === "EISDIR" ? "a folder, not a .pipe file" : "cannot read the file"}`);
  }
  if (file.endsWith(".onnx")) throw new PipecError("not-a-pipe-file", `${file}: not a .pipe file (an ONNX model; name it in a .pipe's model line, or use pipec inspect / generate)`);
  if (!looksLikeText(bytes)) throw new PipecError("not-a-pipe-file", `${file}: not a .pipe file (binary data, not text)`);
  if (bytes.length > MAX_PIPE_BYTES) throw new PipecError("not-a-pipe-file", `${file}: not a .pipe file (${(bytes.length / 1024).toFixed(0)} KiB of text; a pipeline is at most ${MAX_PIPE_BYTES / 1024} KiB)`);
  return bytes.toString("utf8");
}
