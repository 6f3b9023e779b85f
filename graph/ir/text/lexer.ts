/** Tokens of ONNX's textual syntax, plus pipec's weight placeholders `<sha:HEX>` and `<elided>`. */
import { createToken, Lexer, type TokenType } from "chevrotain";

export const WhiteSpace = createToken({ name: "WhiteSpace", pattern: /[ \t\r\n]+/, group: Lexer.SKIPPED });
export const Comment = createToken({ name: "Comment", pattern: /#[^\n]*/, group: Lexer.SKIPPED });

// Placeholders must be tried before `<`.
export const HashRef = createToken({ name: "HashRef", pattern: /<sha:[0-9a-f]+>/, label: "'<sha:…>'" });
export const Elided = createToken({ name: "Elided", pattern: /<elided>/, label: "'<elided>'" });

export const Arrow = createToken({ name: "Arrow", pattern: /=>/, label: "'=>'" });
export const Equals = createToken({ name: "Equals", pattern: /=/, label: "'='" });
export const LAngle = createToken({ name: "LAngle", pattern: /</, label: "'<'" });
export const RAngle = createToken({ name: "RAngle", pattern: />/, label: "'>'" });
export const LParen = createToken({ name: "LParen", pattern: /\(/, label: "'('" });
export const RParen = createToken({ name: "RParen", pattern: /\)/, label: "')'" });
export const LBracket = createToken({ name: "LBracket", pattern: /\[/, label: "'['" });
export const RBracket = createToken({ name: "RBracket", pattern: /\]/, label: "']'" });
export const LBrace = createToken({ name: "LBrace", pattern: /\{/, label: "'{'" });
export const RBrace = createToken({ name: "RBrace", pattern: /\}/, label: "'}'" });
export const Comma = createToken({ name: "Comma", pattern: /,/, label: "','" });
export const Colon = createToken({ name: "Colon", pattern: /:/, label: "':'" });
export const Dot = createToken({ name: "Dot", pattern: /\./, label: "'.'" });
export const At = createToken({ name: "At", pattern: /@/, label: "'@'" });
export const Question = createToken({ name: "Question", pattern: /\?/, label: "'?'" });

export const Str = createToken({ name: "Str", pattern: /"(?:[^"\\]|\\.)*"/, label: "a quoted string" });
/** Integers and decimals; `-nan`/`-inf` too (bare `nan`/`inf` lex as identifiers). */
export const Num = createToken({ name: "Num", pattern: /-?\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|-nan|-inf/, label: "a number" });
export const Ident = createToken({ name: "Ident", pattern: /[A-Za-z_][A-Za-z0-9_]*/, label: "a name" });

export const allTokens: TokenType[] = [
  WhiteSpace,
  Comment,
  HashRef,
  Elided,
  Arrow,
  Equals,
  LAngle,
  RAngle,
  LParen,
  RParen,
  LBracket,
  RBracket,
  LBrace,
  RBrace,
  Comma,
  Colon,
  Dot,
  At,
  Question,
  Str,
  Num,
  Ident,
];

export const textLexer = new Lexer(allTokens, { positionTracking: "full", ensureOptimizations: false });
