/** The syntax tree of a .pipe file. Every node keeps where it was written, for diagnostics. */

/** 1-based line and column of the first character; `length` in characters (for the caret line). */
export interface Span {
  line: number;
  column: number;
  offset: number;
  length: number;
}

export type Value = NumberValue | PercentValue | StringValue | NameValue | ListValue | CallValue;

export interface NumberValue {
  kind: "number";
  value: number;
  text: string;
  span: Span;
}

/** `12.5%`: `value` is 12.5. */
export interface PercentValue {
  kind: "percent";
  value: number;
  text: string;
  span: Span;
}

export interface StringValue {
  kind: "string";
  value: string;
  span: Span;
}

/** A bare identifier: a method without arguments (`greedy`), a reference (`llm`), `true`, `auto`. */
export interface NameValue {
  kind: "name";
  name: string;
  span: Span;
}

export interface ListValue {
  kind: "list";
  items: Value[];
  span: Span;
}

/** `tidal(top_k: 256)`: a method, model loader or stage kind with arguments. */
export interface CallValue {
  kind: "call";
  name: string;
  nameSpan: Span;
  args: Argument[];
  span: Span;
}

/** `top_k: 256` (named) or `llm` (positional). */
export interface Argument {
  name?: string;
  nameSpan?: Span;
  value: Value;
}

/** `kv: streaming(...)` */
export interface Setting {
  kind: "setting";
  key: string;
  keySpan: Span;
  value: Value;
  /** The `?` after the value: the request is applied where the model allows it, and only warned about where not. */
  optional?: Span;
}

/** `model llm = onnx("...")`, `stage decode = generate(llm, tok) { ... }` */
export interface Declaration {
  kind: "declaration";
  keyword: string;
  keywordSpan: Span;
  name: string;
  nameSpan: Span;
  value: Value;
  body?: Setting[];
  /** Offset of the block's closing '}' (for comments before it). */
  bodyEnd?: number;
}

export type Item = Declaration | Setting;

export interface PipelineDecl {
  keyword: string;
  keywordSpan: Span;
  name: string;
  nameSpan: Span;
  items: Item[];
  /** Offset of the closing '}', or the end of the source when it is missing. */
  end: number;
}

export interface Comment {
  text: string;
  span: Span;
}

export interface PipeFile {
  pipelines: PipelineDecl[];
  comments: Comment[];
}

/** Where a value ends (exclusive offset), for trailing comments and carets. */
export function spanEnd(span: Span): number {
  return span.offset + span.length;
}
