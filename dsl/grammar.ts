import { CstParser, EOF, type CstNode, type IParserErrorMessageProvider, type IToken, type TokenType } from "chevrotain";
import {
  Colon,
  Comma,
  Equals,
  Identifier,
  LBracket,
  LCurly,
  LParen,
  NumberLiteral,
  Percent,
  Question,
  RBracket,
  RCurly,
  RParen,
  StringLiteral,
  allTokens,
} from "./lexer.ts";

/** Token names as a user reads them: `'}'`, `a name`, `a number`. */
function describe(type: TokenType): string {
  if (type === EOF) return "end of file";
  if (type === Identifier) return "a name";
  if (type === NumberLiteral) return "a number";
  if (type === Percent) return "a percentage";
  if (type === StringLiteral) return "a string";
  return type.LABEL ?? type.name;
}

function found(token: IToken): string {
  return token.tokenType === EOF ? "end of file" : `'${token.image}'`;
}

const messages: IParserErrorMessageProvider = {
  buildMismatchTokenMessage: ({ expected, actual }) => `expected ${describe(expected)} but found ${found(actual)}`,
  buildNotAllInputParsedMessage: ({ firstRedundant }) => `unexpected ${found(firstRedundant)}: expected 'pipeline <name> { ... }'`,
  buildNoViableAltMessage: ({ actual, ruleName }) => `expected ${ruleDescription(ruleName)} but found ${found(actual[0]!)}`,
  buildEarlyExitMessage: ({ actual, ruleName }) => `expected ${ruleDescription(ruleName)} but found ${found(actual[0]!)}`,
};

function ruleDescription(rule: string): string {
  switch (rule) {
    case "value":
      return "a value (a number, percentage, string, name, list or call)";
    case "item":
      return "':' or a name after the keyword";
    default:
      return rule;
  }
}

/**
 * The whole grammar (keywords, methods and parameters are names checked by the schema):
 *
 *   file     := pipeline*
 *   pipeline := NAME NAME '{' item* '}'
 *   item     := NAME ':' value                      a setting
 *             | NAME NAME '=' value block?          a declaration: model, tokenizer, stage
 *   block    := '{' (NAME ':' value '?'?)* '}'      '?': an optional request
 *   value    := NAME ('(' args? ')')? | NUMBER | PERCENT | STRING | '[' (value (',' value)*)? ']'
 *   args     := arg (',' arg)*
 *   arg      := NAME ':' value | value
 */
export class PipeGrammar extends CstParser {
  constructor() {
    super(allTokens, { recoveryEnabled: true, errorMessageProvider: messages, maxLookahead: 3 });
    this.performSelfAnalysis();
  }

  file = this.RULE("file", () => {
    this.MANY(() => this.SUBRULE(this.pipeline));
  });

  pipeline = this.RULE("pipeline", () => {
    this.CONSUME(Identifier, { LABEL: "keyword" });
    this.CONSUME2(Identifier, { LABEL: "name" });
    this.CONSUME(LCurly);
    this.MANY(() => this.SUBRULE(this.item));
    this.CONSUME(RCurly);
  });

  item = this.RULE("item", () => {
    this.CONSUME(Identifier, { LABEL: "key" });
    this.OR([
      {
        ALT: () => {
          this.CONSUME(Colon);
          this.SUBRULE(this.value);
        },
      },
      {
        ALT: () => {
          this.CONSUME2(Identifier, { LABEL: "name" });
          this.CONSUME(Equals);
          this.SUBRULE2(this.value);
          this.OPTION(() => this.SUBRULE(this.block));
        },
      },
    ]);
  });

  block = this.RULE("block", () => {
    this.CONSUME(LCurly);
    this.MANY(() => this.SUBRULE(this.setting));
    this.CONSUME(RCurly);
  });

  setting = this.RULE("setting", () => {
    this.CONSUME(Identifier, { LABEL: "key" });
    this.CONSUME(Colon);
    this.SUBRULE(this.value);
    this.OPTION(() => this.CONSUME(Question, { LABEL: "optional" }));
  });

  value = this.RULE("value", () => {
    this.OR([
      { ALT: () => this.SUBRULE(this.call) },
      { ALT: () => this.CONSUME(NumberLiteral) },
      { ALT: () => this.CONSUME(Percent) },
      { ALT: () => this.CONSUME(StringLiteral) },
      { ALT: () => this.SUBRULE(this.list) },
    ]);
  });

  call = this.RULE("call", () => {
    this.CONSUME(Identifier, { LABEL: "name" });
    this.OPTION(() => {
      this.CONSUME(LParen);
      this.OPTION2(() => {
        this.SUBRULE(this.arg);
        this.MANY(() => {
          this.CONSUME(Comma);
          this.SUBRULE2(this.arg);
        });
      });
      this.CONSUME(RParen);
    });
  });

  arg = this.RULE("arg", () => {
    this.OPTION({
      GATE: () => this.LA(2).tokenType === Colon,
      DEF: () => {
        this.CONSUME(Identifier, { LABEL: "name" });
        this.CONSUME(Colon);
      },
    });
    this.SUBRULE(this.value);
  });

  list = this.RULE("list", () => {
    this.CONSUME(LBracket);
    this.OPTION(() => {
      this.SUBRULE(this.value);
      this.MANY(() => {
        this.CONSUME(Comma);
        this.SUBRULE2(this.value);
      });
    });
    this.CONSUME(RBracket);
  });
}

export type { CstNode };
