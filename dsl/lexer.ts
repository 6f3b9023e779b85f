import { Lexer, createToken, type TokenType } from "chevrotain";

// Keywords are not tokens: `model`, `stage`, method and parameter names all lex as Identifier and
// are checked against the schema afterwards, so a misspelling gets "did you mean" instead of a
// parse error, and new methods never change the grammar.

export const WhiteSpace = createToken({ name: "WhiteSpace", pattern: /[ \t\r\n]+/, group: Lexer.SKIPPED });
export const Comment = createToken({ name: "Comment", pattern: /#[^\n]*/, group: "comments" });
export const Identifier = createToken({ name: "Identifier", pattern: /[A-Za-z_][A-Za-z0-9_]*/ });
/** A count or fraction; `%` directly after it makes it a percentage (`12.5%`). */
export const Percent = createToken({ name: "Percent", pattern: /-?\d+(?:\.\d+)?%/ });
export const NumberLiteral = createToken({ name: "NumberLiteral", pattern: /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/ });
/** Double-quoted, with JSON escapes (\n \t \" \\ \uXXXX). */
export const StringLiteral = createToken({ name: "StringLiteral", pattern: /"(?:[^"\\\n]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/ });
/** A string with a bad escape or no closing quote: parsed as a string so the error is reported once, precisely. */
export const InvalidString = createToken({ name: "InvalidString", pattern: /"(?:[^"\\\n]|\\.?)*"?/, categories: [StringLiteral] });
export const LCurly = createToken({ name: "LCurly", pattern: "{", label: "'{'" });
export const RCurly = createToken({ name: "RCurly", pattern: "}", label: "'}'" });
export const LParen = createToken({ name: "LParen", pattern: "(", label: "'('" });
export const RParen = createToken({ name: "RParen", pattern: ")", label: "')'" });
export const LBracket = createToken({ name: "LBracket", pattern: "[", label: "'['" });
export const RBracket = createToken({ name: "RBracket", pattern: "]", label: "']'" });
export const Comma = createToken({ name: "Comma", pattern: ",", label: "','" });
export const Colon = createToken({ name: "Colon", pattern: ":", label: "':'" });
export const Equals = createToken({ name: "Equals", pattern: "=", label: "'='" });
/** After a stage's optimisation request: apply it where the model allows, warn where it does not. */
export const Question = createToken({ name: "Question", pattern: "?", label: "'?'" });

export const allTokens: TokenType[] = [
  WhiteSpace,
  Comment,
  Percent,
  NumberLiteral,
  StringLiteral,
  InvalidString,
  Identifier,
  LCurly,
  RCurly,
  LParen,
  RParen,
  LBracket,
  RBracket,
  Comma,
  Colon,
  Equals,
  Question,
];

export const pipeLexer = new Lexer(allTokens, { positionTracking: "full", ensureOptimizations: false });
