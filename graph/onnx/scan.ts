import { PipecError } from "../errors.ts";
import type { ByteRange, ByteSource } from "./byte-source.ts";
import { WIRE_I32, WIRE_I64, WIRE_LEN, WIRE_VARINT } from "./wire.ts";

// Field numbers from onnx.proto that the scanner descends through.
const MODEL_GRAPH = 7;
const GRAPH_INITIALIZER = 5;
const TENSOR_RAW_DATA = 9;

/** A message's bytes, minus the fields the scanner took out, as coalesced ranges of the source. */
export type Spans = ByteRange[];

export interface ScannedTensor {
  spans: Spans;
  raw: ByteRange | undefined;
}

export interface ScannedModel {
  model: Spans;
  graph: Spans | undefined;
  initializers: ScannedTensor[];
}

/**
 * Walks the protobuf structure ModelProto -> graph -> initializer -> raw_data without decoding,
 * recording where each initializer's raw bytes lie instead of reading them. Everything else is
 * left for the real decoder as byte ranges. Reading a model thus costs its graph, not its weights.
 */
export function scanModel(source: ByteSource, lazyMin: number): ScannedModel {
  const cursor = new Cursor(source, 0, source.size);
  const model: Spans = [];
  let graph: Spans | undefined;
  const initializers: ScannedTensor[] = [];
  while (!cursor.done) {
    const start = cursor.pos;
    const { field, wire } = cursor.tag();
    if (field === MODEL_GRAPH && wire === WIRE_LEN) {
      if (graph) throw cursor.error("the model has two graph fields");
      const len = cursor.length();
      graph = scanGraph(new Cursor(source, cursor.pos, cursor.pos + len), lazyMin, initializers);
      cursor.skip(len);
    } else {
      cursor.skipField(wire);
      addSpan(model, source, start, cursor.pos);
    }
  }
  return { model, graph, initializers };
}

function scanGraph(cursor: Cursor, lazyMin: number, initializers: ScannedTensor[]): Spans {
  const spans: Spans = [];
  while (!cursor.done) {
    const start = cursor.pos;
    const { field, wire } = cursor.tag();
    if (field === GRAPH_INITIALIZER && wire === WIRE_LEN) {
      const len = cursor.length();
      initializers.push(scanTensor(new Cursor(cursor.source, cursor.pos, cursor.pos + len), lazyMin));
      cursor.skip(len);
    } else {
      cursor.skipField(wire);
      addSpan(spans, cursor.source, start, cursor.pos);
    }
  }
  return spans;
}

function scanTensor(cursor: Cursor, lazyMin: number): ScannedTensor {
  const spans: Spans = [];
  let raw: ByteRange | undefined;
  while (!cursor.done) {
    const start = cursor.pos;
    const { field, wire } = cursor.tag();
    if (field === TENSOR_RAW_DATA && wire === WIRE_LEN) {
      const len = cursor.length();
      if (len >= lazyMin) {
        raw = { source: cursor.source, offset: cursor.pos, length: len };
        cursor.skip(len);
        continue;
      }
      cursor.skip(len);
    } else {
      cursor.skipField(wire);
    }
    addSpan(spans, cursor.source, start, cursor.pos);
  }
  return { spans, raw };
}

function addSpan(spans: Spans, source: ByteSource, start: number, end: number): void {
  const last = spans[spans.length - 1];
  if (last && last.offset + last.length === start) last.length += end - start;
  else spans.push({ source, offset: start, length: end - start });
}

/** Reads the bytes of spans into one buffer (a view when there is a single in-memory span). */
export function readSpans(spans: Spans): Uint8Array {
  if (spans.length === 1) return spans[0]!.source.read(spans[0]!.offset, spans[0]!.length);
  const total = spans.reduce((n, s) => n + s.length, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const s of spans) {
    out.set(s.source.read(s.offset, s.length), at);
    at += s.length;
  }
  return out;
}

const WINDOW = 64 * 1024;

/** A bounded reader of protobuf tags and lengths over a byte source, buffered in small windows. */
class Cursor {
  pos: number;
  private buf: Uint8Array = new Uint8Array(0);
  private bufStart = 0;

  constructor(
    readonly source: ByteSource,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
    if (end > source.size) throw this.error(`a field claims ${end - start} bytes but the file ends at byte ${source.size}`);
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  error(message: string): PipecError {
    return new PipecError("invalid-model", `not a valid ONNX protobuf: ${message} (at byte ${this.pos})`);
  }

  private byte(): number {
    if (this.pos >= this.end) throw this.error("truncated: a field runs past the end of its message");
    const i = this.pos - this.bufStart;
    if (i < 0 || i >= this.buf.length) {
      this.bufStart = this.pos;
      this.buf = this.source.read(this.pos, Math.min(WINDOW, this.end - this.pos));
    }
    return this.buf[this.pos++ - this.bufStart]!;
  }

  varint(): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      const b = this.byte();
      result += (b & 0x7f) * scale;
      if (b < 0x80) return result;
      scale *= 128;
    }
    throw this.error("malformed varint");
  }

  tag(): { field: number; wire: number } {
    const t = this.varint();
    const field = Math.floor(t / 8);
    const wire = t % 8;
    if (field === 0) throw this.error("field number 0");
    return { field, wire };
  }

  length(): number {
    const len = this.varint();
    if (this.pos + len > this.end) throw this.error(`truncated: a field of ${len} bytes runs past the end of its message`);
    return len;
  }

  skip(n: number): void {
    this.pos += n;
  }

  skipField(wire: number): void {
    switch (wire) {
      case WIRE_VARINT:
        this.varint();
        return;
      case WIRE_I64:
        return this.skipChecked(8);
      case WIRE_LEN:
        return this.skip(this.length());
      case WIRE_I32:
        return this.skipChecked(4);
      default:
        throw this.error(`unsupported wire type ${wire}`);
    }
  }

  private skipChecked(n: number): void {
    if (this.pos + n > this.end) throw this.error("truncated fixed-size field");
    this.skip(n);
  }
}
