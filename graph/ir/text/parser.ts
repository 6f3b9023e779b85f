/**
 * Chevrotain grammar of ONNX's textual syntax (onnx/docs/Syntax.md), producing the AST of ast.ts.
 * Where the syntax needs more than the next tokens' kinds to decide (is `float` a type or a name,
 * is `g (` a graph or a type), gates look at the tokens' text.
 */
import { EmbeddedActionsParser, EOF, type IParserErrorMessageProvider, type IToken, type TokenType } from "chevrotain";
import type { AttributeAst, ConstantDataAst, FunctionAst, GraphAst, HeaderEntryAst, ModelAst, NodeAst, SingleAttrValueAst, TensorAst, TypeAst, ValueInfoAst } from "./ast.ts";
import * as T from "./lexer.ts";

const TYPE_CONSTRUCTORS = new Set(["seq", "optional", "map", "sparse_tensor", "opaque"]);

const describe = (t: IToken) => (t.tokenType === EOF ? "the end of the text" : `'${t.image}'`);
const labelOf = (t: TokenType) => t.LABEL ?? t.name;

/** Messages in the form `expected ')' but found ','`. */
const messages: IParserErrorMessageProvider = {
  buildMismatchTokenMessage: ({ expected, actual }) => `expected ${labelOf(expected)} but found ${describe(actual)}`,
  buildNotAllInputParsedMessage: ({ firstRedundant }) => `expected the end of the text but found ${describe(firstRedundant)}`,
  buildNoViableAltMessage: ({ expectedPathsPerAlt, actual, ruleName }) => {
    const firsts = [...new Set(expectedPathsPerAlt.flat().map((path) => labelOf(path[0]!)))];
    return `expected ${firsts.length > 0 && firsts.length <= 4 ? firsts.join(" or ") : `a ${ruleName}`} but found ${describe(actual[0]!)}`;
  },
  buildEarlyExitMessage: ({ expectedIterationPaths, actual, ruleName }) => {
    const firsts = [...new Set(expectedIterationPaths.map((path) => labelOf(path[0]!)))];
    return `expected ${firsts.length > 0 ? firsts.join(" or ") : `a ${ruleName}`} but found ${describe(actual[0]!)}`;
  },
};

export class TextParser extends EmbeddedActionsParser {
  constructor() {
    super(T.allTokens, { maxLookahead: 3, errorMessageProvider: messages, recoveryEnabled: false });
    this.performSelfAnalysis();
  }

  private isId(i: number): boolean {
    const t = this.LA(i).tokenType;
    return t === T.Ident || t === T.Str;
  }

  /** A value info starts with a type when a name follows the type's first word. */
  private typeFollows(): boolean {
    const next = this.LA(2).tokenType;
    return this.LA(1).tokenType === T.Ident && (next === T.Ident || next === T.Str || next === T.LBracket || next === T.LParen);
  }

  model = this.RULE("model", (): ModelAst => {
    const header = this.OPTION(() => this.SUBRULE(this.header)) ?? [];
    const graph = this.SUBRULE(this.graph);
    const functions: FunctionAst[] = [];
    this.MANY(() => functions.push(this.SUBRULE(this.function)));
    return { header, graph, functions };
  });

  header = this.RULE("header", (): HeaderEntryAst[] => {
    const entries: HeaderEntryAst[] = [];
    this.CONSUME(T.LAngle);
    this.AT_LEAST_ONE_SEP({ SEP: T.Comma, DEF: () => entries.push(this.SUBRULE(this.headerEntry)) });
    this.CONSUME(T.RAngle);
    return entries;
  });

  headerEntry = this.RULE("headerEntry", (): HeaderEntryAst => {
    const key = this.CONSUME(T.Ident);
    this.CONSUME(T.Colon);
    const value = this.OR<IToken | [IToken, IToken][]>([
      { ALT: () => this.CONSUME(T.Num) },
      { ALT: () => this.CONSUME(T.Str) },
      { ALT: () => this.SUBRULE(this.pairList) },
    ]);
    return { key, value };
  });

  /** `["k": v, …]`: opset imports, metadata, external data references. */
  pairList = this.RULE("pairList", (): [IToken, IToken][] => {
    const pairs: [IToken, IToken][] = [];
    this.CONSUME(T.LBracket);
    this.MANY_SEP({
      SEP: T.Comma,
      DEF: () => {
        const k = this.CONSUME1(T.Str);
        this.CONSUME(T.Colon);
        const v = this.OR([{ ALT: () => this.CONSUME(T.Num) }, { ALT: () => this.CONSUME2(T.Str) }]);
        pairs.push([k, v]);
      },
    });
    this.CONSUME(T.RBracket);
    return pairs;
  });

  quotableId = this.RULE("quotableId", (): IToken => this.OR([{ ALT: () => this.CONSUME(T.Ident) }, { ALT: () => this.CONSUME(T.Str) }]));

  graph = this.RULE("graph", (): GraphAst => {
    const name = this.SUBRULE(this.quotableId);
    const inputs = this.SUBRULE(this.valueInfoList);
    this.CONSUME(T.Arrow);
    const outputs = this.SUBRULE2(this.valueInfoList);
    let inner: ValueInfoAst[] = [];
    this.OPTION(() => {
      this.CONSUME(T.LAngle);
      inner = this.SUBRULE(this.valueInfos);
      this.CONSUME(T.RAngle);
    });
    const nodes = this.SUBRULE(this.nodeList);
    return { name, inputs, outputs, inner, nodes };
  });

  valueInfoList = this.RULE("valueInfoList", (): ValueInfoAst[] => {
    this.CONSUME(T.LParen);
    const infos = this.SUBRULE(this.valueInfos);
    this.CONSUME(T.RParen);
    return infos;
  });

  valueInfos = this.RULE("valueInfos", (): ValueInfoAst[] => {
    const infos: ValueInfoAst[] = [];
    this.MANY_SEP({ SEP: T.Comma, DEF: () => infos.push(this.SUBRULE(this.valueInfo)) });
    return infos;
  });

  /** `type name`, `name` or `type name = data` (an initializer). */
  valueInfo = this.RULE("valueInfo", (): ValueInfoAst => {
    const type = this.OPTION({ GATE: () => this.typeFollows(), DEF: () => this.SUBRULE(this.type) });
    const name = this.SUBRULE(this.quotableId);
    const data = this.OPTION2(() => {
      this.CONSUME(T.Equals);
      return this.SUBRULE(this.constantData);
    });
    return { type, name, data };
  });

  type = this.RULE("type", (): TypeAst => {
    const word = this.CONSUME(T.Ident);
    return this.OR<TypeAst>([
      {
        GATE: () => TYPE_CONSTRUCTORS.has(word.image) && this.LA(1).tokenType === T.LParen,
        ALT: () => {
          this.CONSUME(T.LParen);
          const t = this.SUBRULE(this.typeArguments, { ARGS: [word] });
          this.CONSUME(T.RParen);
          return t;
        },
      },
      { ALT: () => ({ kind: "tensor", elem: word, dims: this.SUBRULE(this.shape) }) },
    ]);
  });

  /** `word` is the constructor (`seq`, `map`, …); undefined while Chevrotain records the grammar. */
  typeArguments = this.RULE("typeArguments", (word: IToken | undefined): TypeAst => {
    return this.OR<TypeAst>([
      {
        GATE: () => word?.image === "map",
        ALT: () => {
          const key = this.CONSUME(T.Ident);
          this.CONSUME(T.Comma);
          return { kind: "map", key, value: this.SUBRULE(this.type) };
        },
      },
      {
        GATE: () => word?.image === "sparse_tensor",
        ALT: () => ({ kind: "sparse_tensor", elem: this.CONSUME2(T.Ident), dims: this.SUBRULE(this.shape) }),
      },
      {
        GATE: () => word?.image === "opaque",
        ALT: () => {
          const parts: IToken[] = [];
          this.MANY_SEP({ SEP: T.Comma, DEF: () => parts.push(this.SUBRULE(this.dottedName)) });
          return { kind: "opaque", parts };
        },
      },
      { ALT: () => ({ kind: word?.image === "seq" ? "seq" : "optional", elem: this.SUBRULE2(this.type) }) },
    ]);
  });

  /** `a.b.c` as one token (for opaque type names). */
  dottedName = this.RULE("dottedName", (): IToken => {
    const first = this.CONSUME(T.Ident);
    let image = first.image;
    this.MANY(() => {
      this.CONSUME(T.Dot);
      image += `.${this.CONSUME2(T.Ident).image}`;
    });
    return { ...first, image };
  });

  /** Undefined for `[]` (rank unknown), `[]` for no brackets at all (a scalar). */
  shape = this.RULE("shape", (): IToken[] | undefined => {
    let dims: IToken[] | undefined = [];
    this.OPTION(() => {
      this.CONSUME(T.LBracket);
      const list: IToken[] = [];
      this.MANY_SEP({
        SEP: T.Comma,
        DEF: () => list.push(this.OR([{ ALT: () => this.CONSUME(T.Question) }, { ALT: () => this.CONSUME(T.Num) }, { ALT: () => this.SUBRULE(this.quotableId) }])),
      });
      this.CONSUME(T.RBracket);
      dims = list.length > 0 ? list : undefined;
    });
    return dims;
  });

  constantData = this.RULE("constantData", (): ConstantDataAst => {
    return this.OR<ConstantDataAst>([
      {
        ALT: () => {
          const open = this.CONSUME(T.LBrace);
          const values: IToken[] = [];
          this.MANY_SEP({
            SEP: T.Comma,
            DEF: () => values.push(this.OR2([{ ALT: () => this.CONSUME(T.Num) }, { ALT: () => this.CONSUME(T.Str) }, { ALT: () => this.CONSUME(T.Ident) }])),
          });
          this.CONSUME(T.RBrace);
          return { kind: "values", open, values };
        },
      },
      { ALT: () => ({ kind: "external", open: this.LA(1), entries: this.SUBRULE(this.pairList) }) },
      { ALT: () => ({ kind: "hash", token: this.CONSUME(T.HashRef) }) },
      { ALT: () => ({ kind: "elided", token: this.CONSUME(T.Elided) }) },
    ]);
  });

  nodeList = this.RULE("nodeList", (): NodeAst[] => {
    const nodes: NodeAst[] = [];
    this.CONSUME(T.LBrace);
    this.MANY(() => nodes.push(this.SUBRULE(this.node)));
    this.CONSUME(T.RBrace);
    return nodes;
  });

  node = this.RULE("node", (): NodeAst => {
    const label = this.OPTION(() => {
      this.CONSUME(T.LBracket);
      const l = this.SUBRULE(this.quotableId);
      this.CONSUME(T.RBracket);
      return l;
    });
    const outputs = this.SUBRULE(this.idList);
    this.CONSUME(T.Equals);
    const op = [this.CONSUME(T.Ident)];
    this.MANY(() => {
      this.CONSUME(T.Dot);
      op.push(this.CONSUME2(T.Ident));
    });
    const overload = this.OPTION2(() => {
      this.CONSUME(T.Colon);
      return this.CONSUME3(T.Ident);
    });
    let attributes = this.OPTION3(() => this.SUBRULE(this.attributeList)) ?? [];
    this.CONSUME(T.LParen);
    const inputs = this.SUBRULE2(this.idList);
    this.CONSUME(T.RParen);
    this.OPTION4(() => (attributes = this.SUBRULE2(this.attributeList)));
    return { label, outputs, op, overload, attributes, inputs };
  });

  idList = this.RULE("idList", (): IToken[] => {
    const ids: IToken[] = [];
    this.MANY_SEP({ SEP: T.Comma, DEF: () => ids.push(this.SUBRULE(this.quotableId)) });
    return ids;
  });

  attributeList = this.RULE("attributeList", (): AttributeAst[] => {
    const attrs: AttributeAst[] = [];
    this.CONSUME(T.LAngle);
    this.AT_LEAST_ONE_SEP({ SEP: T.Comma, DEF: () => attrs.push(this.SUBRULE(this.attribute)) });
    this.CONSUME(T.RAngle);
    return attrs;
  });

  attribute = this.RULE("attribute", (): AttributeAst => {
    const name = this.CONSUME(T.Ident);
    const type = this.OPTION(() => {
      this.CONSUME(T.Colon);
      return this.CONSUME2(T.Ident);
    });
    this.CONSUME(T.Equals);
    const wantsType = type?.image === "type_proto" || type?.image === "type_protos";
    const value = this.OR<AttributeAst["value"]>([
      {
        ALT: () => {
          this.CONSUME(T.At);
          return { kind: "ref", name: this.CONSUME3(T.Ident) };
        },
      },
      {
        ALT: () => {
          const open = this.CONSUME(T.LBracket);
          const items: SingleAttrValueAst[] = [];
          this.MANY_SEP({ SEP: T.Comma, DEF: () => items.push(this.SUBRULE(this.singleAttrValue, { ARGS: [wantsType] })) });
          this.CONSUME(T.RBracket);
          return { kind: "list", open, items };
        },
      },
      { ALT: () => this.SUBRULE2(this.singleAttrValue, { ARGS: [wantsType] }) },
    ]);
    return { name, type, value };
  });

  singleAttrValue = this.RULE("singleAttrValue", (wantsType: boolean): SingleAttrValueAst => {
    return this.OR<SingleAttrValueAst>({
      IGNORE_AMBIGUITIES: true,
      DEF: [
        { GATE: () => this.isId(1) && this.LA(2).tokenType === T.LParen && !TYPE_CONSTRUCTORS.has(this.LA(1).image), ALT: () => ({ kind: "graph", graph: this.SUBRULE(this.graph) }) },
        { GATE: () => wantsType, ALT: () => ({ kind: "type", type: this.SUBRULE(this.type) }) },
        { GATE: () => this.LA(1).tokenType === T.Ident && this.startsTensor(), ALT: () => ({ kind: "tensor", tensor: this.SUBRULE(this.tensorConstant) }) },
        { ALT: () => ({ kind: "token", token: this.CONSUME(T.Num) }) },
        { ALT: () => ({ kind: "token", token: this.CONSUME(T.Str) }) },
        { ALT: () => ({ kind: "token", token: this.CONSUME(T.Ident) }) },
      ],
    });
  });

  /** After an element type: a shape, a name, `=`, data or a placeholder (else it is a bare word like `nan`). */
  private startsTensor(): boolean {
    const next = this.LA(2).tokenType;
    return [T.LBracket, T.Ident, T.Str, T.Equals, T.LBrace, T.HashRef, T.Elided].includes(next);
  }

  /** `float[2] name = {1,2}`: name and `=` optional. */
  tensorConstant = this.RULE("tensorConstant", (): TensorAst => {
    const type = this.SUBRULE(this.type);
    const name = this.OPTION(() => this.SUBRULE(this.quotableId));
    this.OPTION2(() => this.CONSUME(T.Equals));
    const data = this.SUBRULE(this.constantData);
    return { type, name, data };
  });

  function = this.RULE("function", (): FunctionAst => {
    const header = this.OPTION(() => this.SUBRULE(this.header)) ?? [];
    const name = this.SUBRULE(this.quotableId);
    const attributes: (IToken | AttributeAst)[] = [];
    this.OPTION2(() => {
      this.CONSUME(T.LAngle);
      this.MANY_SEP({
        SEP: T.Comma,
        DEF: () =>
          attributes.push(
            this.OR([
              { GATE: () => this.LA(2).tokenType === T.Colon || this.LA(2).tokenType === T.Equals, ALT: () => this.SUBRULE(this.attribute) },
              { ALT: () => this.CONSUME(T.Ident) },
            ]),
          ),
      });
      this.CONSUME(T.RAngle);
    });
    const inputs = this.SUBRULE(this.valueInfoList);
    this.CONSUME(T.Arrow);
    const outputs = this.SUBRULE2(this.valueInfoList);
    let valueInfos: ValueInfoAst[] = [];
    this.OPTION3(() => {
      this.CONSUME2(T.LAngle);
      valueInfos = this.SUBRULE(this.valueInfos);
      this.CONSUME2(T.RAngle);
    });
    const nodes = this.SUBRULE(this.nodeList);
    return { header, name, attributes, inputs, outputs, valueInfos, nodes };
  });
}
