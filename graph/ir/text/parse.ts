import { EOF, type IToken } from "chevrotain";
import { PipecError } from "../../errors.ts";
import type { Model } from "../model.ts";
import { textLexer } from "./lexer.ts";
import { TextParser } from "./parser.ts";
import { modelFromAst } from "./to-ir.ts";

let parser: TextParser | undefined; // building the grammar takes a while: once per process

/**
 * Parses a model in ONNX's textual syntax (what printModel and onnx.printer write) into the IR.
 * Weights written as `<sha:…>` or `<elided>` become ElidedTensor placeholders: such a model
 * prints the same way again but cannot be saved or run (saveModel throws a PipecError naming the
 * tensor). Errors are PipecErrors located at `file:line:column` (`file` defaults to `<text>`).
 */
export function parseModel(text: string, file = "<text>"): Model {
  const lexed = textLexer.tokenize(text);
  const bad = lexed.errors[0];
  if (bad) {
    const ch = text.slice(bad.offset, bad.offset + 1);
    throw new PipecError("text-syntax", `unexpected character '${ch}'`, { file, line: bad.line, column: bad.column });
  }
  parser ??= new TextParser();
  parser.input = lexed.tokens;
  const ast = parser.model();
  const error = parser.errors[0];
  if (error) throw new PipecError("text-syntax", error.message, { file, ...position(error.token, lexed.tokens) });
  return modelFromAst(ast, file);
}

/** Where a token starts; the end of input sits just after the last token. */
function position(token: IToken, tokens: IToken[]): { line?: number; column?: number } {
  if (token.tokenType !== EOF) return { line: token.startLine, column: token.startColumn };
  const last = tokens[tokens.length - 1];
  return last ? { line: last.endLine, column: (last.endColumn ?? 0) + 1 } : { line: 1, column: 1 };
}
