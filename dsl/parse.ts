import type { CstNode, IRecognitionException, IToken } from "chevrotain";
import type { Argument, Comment, Declaration, Item, PipeFile, PipelineDecl, Setting, Span, Value } from "./ast.ts";
import { Diagnostics } from "./diagnostics.ts";
import { PipeGrammar } from "./grammar.ts";
import { InvalidString, LBracket, LCurly, LParen, RBracket, RCurly, RParen, pipeLexer } from "./lexer.ts";

/** Brackets a value may nest; deeper input is refused before the recursive-descent parser sees it. */
export const MAX_NESTING = 64;

const grammar = new PipeGrammar();

export interface ParseResult<T> {
  ast: T;
  diagnostics: Diagnostics;
}

/** Parses a whole .pipe source. Syntax errors are collected (with recovery), never thrown. */
export function parsePipe(source: string): ParseResult<PipeFile> {
  const diagnostics = new Diagnostics();
  const cst = runRule(source, diagnostics, () => grammar.file());
  const lexed = pipeLexer.tokenize(source);
  const comments: Comment[] = (lexed.groups["comments"] ?? []).map((t) => ({ text: t.image, span: spanOf(t) }));
  const pipelines = children(cst, "pipeline").map((p) => toPipeline(p, source.length));
  return { ast: { pipelines, comments }, diagnostics };
}

/** Parses one value, e.g. the `streaming(sinks: 4)` of a command-line option. */
export function parseValue(source: string): ParseResult<Value | undefined> {
  const diagnostics = new Diagnostics();
  const cst = runRule(source, diagnostics, () => grammar.value());
  const ast = diagnostics.hasErrors ? undefined : toValue(cst);
  return { ast, diagnostics };
}

function runRule(source: string, diagnostics: Diagnostics, rule: () => CstNode): CstNode {
  const lexed = pipeLexer.tokenize(source);
  for (const e of lexed.errors) {
    const ch = source[e.offset] ?? "";
    const message = ch === '"' ? "unterminated string or invalid escape (strings take \\n \\t \\\" \\\\ \\uXXXX and end on the same line)" : `unexpected character '${ch}'`;
    diagnostics.syntaxError(message, { line: e.line ?? 1, column: e.column ?? 1, offset: e.offset, length: e.length });
  }
  for (const t of lexed.tokens) if (t.tokenType === InvalidString) reportInvalidString(t, diagnostics);
  const tooDeep = nestingPastLimit(lexed.tokens);
  if (tooDeep) diagnostics.syntaxError(`brackets nest deeper than ${MAX_NESTING} levels`, spanOf(tooDeep));
  grammar.input = tooDeep ? [] : lexed.tokens;
  const cst = rule();
  // Chevrotain sets previousToken on every recognition exception; its typings omit it.
  for (const e of grammar.errors as (IRecognitionException & { previousToken?: IToken })[]) {
    // A missing ')' or '}' is reported where it belongs (after the last good token), not on the next line.
    const missing = e.token.tokenType.name === "EOF" || Number.isNaN(e.token.startOffset) || (e.previousToken !== undefined && e.token.startLine !== e.previousToken.endLine && e.name === "MismatchedTokenException");
    const open = e.token.tokenType.name === "EOF" && e.message.startsWith("expected '}'") ? unclosedBrace(lexed.tokens) : undefined;
    const message = open ? `${e.message}: the '{' at ${open.startLine}:${open.startColumn} is never closed` : e.message;
    diagnostics.syntaxError(message, missing ? afterToken(e.previousToken, source) : spanOf(e.token));
  }
  return cst;
}

/** The first opening bracket past MAX_NESTING, if any. */
function nestingPastLimit(tokens: readonly IToken[]): IToken | undefined {
  let depth = 0;
  for (const t of tokens) {
    if (t.tokenType === LCurly || t.tokenType === LParen || t.tokenType === LBracket) {
      if (++depth > MAX_NESTING) return t;
    } else if (t.tokenType === RCurly || t.tokenType === RParen || t.tokenType === RBracket) depth = Math.max(0, depth - 1);
  }
  return undefined;
}

/** The innermost '{' left open at the end of the input. */
function unclosedBrace(tokens: readonly IToken[]): IToken | undefined {
  const open: IToken[] = [];
  for (const t of tokens) {
    if (t.tokenType === LCurly) open.push(t);
    else if (t.tokenType === RCurly) open.pop();
  }
  return open.at(-1);
}

function reportInvalidString(t: IToken, diagnostics: Diagnostics): void {
  const escape = /\\(?!["\\/bfnrt]|u[0-9a-fA-F]{4})./.exec(t.image);
  if (escape) {
    const at = { ...spanOf(t), column: (t.startColumn ?? 1) + escape.index, offset: t.startOffset + escape.index, length: escape[0].length };
    diagnostics.syntaxError(`invalid escape '${escape[0]}' in a string (strings take \\n \\t \\" \\\\ \\uXXXX)`, at);
  } else diagnostics.syntaxError("unterminated string: a string ends with '\"' on the same line", spanOf(t));
}

/** The text of a string token; an invalid one (already reported) keeps its raw characters. */
function stringValue(image: string): string {
  try {
    return JSON.parse(image) as string;
  } catch {
    return image.replace(/^"|"$/g, "");
  }
}

function endOfSource(source: string): Span {
  const lines = source.split("\n");
  return { line: lines.length, column: lines[lines.length - 1]!.length + 1, offset: source.length, length: 1 };
}

/** The place right after a token (where a missing '}' would go). */
function afterToken(token: IToken | undefined, source: string): Span {
  if (!token || Number.isNaN(token.startOffset)) return endOfSource(source);
  return { line: token.endLine ?? token.startLine ?? 1, column: (token.endColumn ?? 0) + 1, offset: (token.endOffset ?? 0) + 1, length: 1 };
}

export function spanOf(t: IToken): Span {
  return { line: t.startLine ?? 1, column: t.startColumn ?? 1, offset: t.startOffset, length: t.image.length };
}

/** The span from the start of `a` to the end of `b`. */
function cover(a: Span, b: Span): Span {
  return { ...a, length: b.offset + b.length - a.offset };
}

function children(node: CstNode | undefined, name: string): CstNode[] {
  return (node?.children[name] as CstNode[] | undefined) ?? [];
}

/** Tokens a rule consumed; recovery inserts virtual tokens with no position, which are dropped. */
function tokens(node: CstNode | undefined, name: string): IToken[] {
  return ((node?.children[name] as IToken[] | undefined) ?? []).filter((t) => !Number.isNaN(t.startOffset));
}

function toPipeline(node: CstNode, sourceEnd: number): PipelineDecl {
  const [keyword, name] = [tokens(node, "keyword")[0], tokens(node, "name")[0]];
  const keywordSpan = keyword ? spanOf(keyword) : { line: 1, column: 1, offset: 0, length: 0 };
  return {
    keyword: keyword?.image ?? "",
    keywordSpan,
    name: name?.image ?? "",
    nameSpan: name ? spanOf(name) : keywordSpan,
    items: children(node, "item").flatMap((n) => toItem(n) ?? []),
    end: tokens(node, "RCurly")[0]?.startOffset ?? sourceEnd,
  };
}

function toItem(node: CstNode): Item | undefined {
  const key = tokens(node, "key")[0];
  if (!key) return undefined;
  const name = tokens(node, "name")[0];
  const valueNode = children(node, "value")[0];
  const value = valueNode && toValue(valueNode);
  if (!value) return undefined;
  if (!name) return { kind: "setting", key: key.image, keySpan: spanOf(key), value };
  const block = children(node, "block")[0];
  const decl: Declaration = { kind: "declaration", keyword: key.image, keywordSpan: spanOf(key), name: name.image, nameSpan: spanOf(name), value };
  if (block) {
    decl.body = children(block, "setting").flatMap((s) => toSetting(s) ?? []);
    const close = tokens(block, "RCurly")[0];
    if (close) decl.bodyEnd = close.startOffset;
  }
  return decl;
}

function toSetting(node: CstNode): Setting | undefined {
  const key = tokens(node, "key")[0];
  const value = toValue(children(node, "value")[0]);
  const optional = tokens(node, "optional")[0];
  return key && value ? { kind: "setting", key: key.image, keySpan: spanOf(key), value, ...(optional && { optional: spanOf(optional) }) } : undefined;
}

function toValue(node: CstNode | undefined): Value | undefined {
  if (!node) return undefined;
  const call = children(node, "call")[0];
  if (call) return toCall(call);
  const list = children(node, "list")[0];
  if (list) {
    const open = tokens(list, "LBracket")[0];
    const close = tokens(list, "RBracket")[0];
    const items = children(list, "value").flatMap((v) => toValue(v) ?? []);
    if (!open) return undefined;
    return { kind: "list", items, span: cover(spanOf(open), close ? spanOf(close) : (items.at(-1)?.span ?? spanOf(open))) };
  }
  const num = tokens(node, "NumberLiteral")[0];
  if (num) return { kind: "number", value: Number(num.image), text: num.image, span: spanOf(num) };
  const pct = tokens(node, "Percent")[0];
  if (pct) return { kind: "percent", value: Number(pct.image.slice(0, -1)), text: pct.image, span: spanOf(pct) };
  const str = tokens(node, "StringLiteral")[0];
  if (str) return { kind: "string", value: stringValue(str.image), span: spanOf(str) };
  return undefined;
}

function toCall(node: CstNode): Value | undefined {
  const name = tokens(node, "name")[0];
  if (!name) return undefined;
  const nameSpan = spanOf(name);
  if (tokens(node, "LParen").length === 0) return { kind: "name", name: name.image, span: nameSpan };
  const args: Argument[] = children(node, "arg").flatMap((a) => {
    const value = toValue(children(a, "value")[0]);
    if (!value) return [];
    const argName = tokens(a, "name")[0];
    return [argName ? { name: argName.image, nameSpan: spanOf(argName), value } : { value }];
  });
  const close = tokens(node, "RParen")[0];
  const end = close ? spanOf(close) : (args.at(-1)?.value.span ?? nameSpan);
  return { kind: "call", name: name.image, nameSpan, args, span: cover(nameSpan, end) };
}
