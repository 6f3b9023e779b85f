import { describe, expect, it } from "vitest";
import type { CallValue, Declaration } from "../../dsl/ast.ts";
import { parsePipe } from "../../dsl/parse.ts";

const SOURCE = `# a comment
pipeline chat {
  model llm = onnx("m.onnx")  # trailing
  stage decode = generate(llm, tok) {
    attention: tidal(top_k: 12.5%, select_layers: [2, 13])
    stop: ["\\n\\n", "\\u00e9\\"q\\""]
  }
}
`;

describe("parsePipe", () => {
  it("builds the AST with source locations", () => {
    const { ast, diagnostics } = parsePipe(SOURCE);
    expect(diagnostics.items).toEqual([]);
    const [model, stage] = ast.pipelines[0]!.items as Declaration[];
    expect(model).toMatchObject({ keyword: "model", name: "llm", nameSpan: { line: 3, column: 9 }, value: { kind: "call", name: "onnx" } });
    const attention = stage!.body![0]!;
    expect(attention.keySpan).toMatchObject({ line: 5, column: 5 });
    const call = attention.value as CallValue;
    expect(call.args.map((a) => [a.name, a.value.kind])).toEqual([
      ["top_k", "percent"],
      ["select_layers", "list"],
    ]);
    expect(call.args[0]!.value).toMatchObject({ value: 12.5, span: { line: 5, column: 29, length: 5 } });
  });

  it("decodes string escapes", () => {
    const stop = (parsePipe(SOURCE).ast.pipelines[0]!.items[1] as Declaration).body![1]!.value;
    expect(stop.kind === "list" && stop.items.map((i) => (i.kind === "string" ? i.value : ""))).toEqual(["\n\n", 'é"q"']);
  });

  it("keeps comments apart from the tree", () => {
    expect(parsePipe(SOURCE).ast.comments.map((c) => [c.text, c.span.line])).toEqual([
      ["# a comment", 1],
      ["# trailing", 3],
    ]);
  });

  it("recovers from syntax errors and reports each one", () => {
    const { ast, diagnostics } = parsePipe("pipeline p {\n  a: f(x: 1\n  b c = [1, 2\n  d: 3\n}\n");
    expect(diagnostics.items.map((d) => `${d.span?.line}:${d.span?.column} ${d.message}`)).toEqual(["2:12 expected ')' but found 'b'", "3:14 expected ']' but found 'd'"]);
    expect(ast.pipelines[0]!.items.map((i) => (i.kind === "setting" ? i.key : i.name))).toEqual(["a", "c", "d"]);
  });
});
