// Regenerates the generated parts of the language docs: the method reference in
// docs/language.md (between its `methods` markers) and docs/language-diagrams.html, railroad
// diagrams drawn from the Chevrotain parser itself. Run: npx tsx compiler/methods/docs.ts
import { readFileSync, writeFileSync } from "node:fs";
import { createSyntaxDiagramsCode } from "chevrotain";
import { PipeGrammar } from "../../dsl/grammar.ts";
import { METHODS_BEGIN as BEGIN, METHODS_END as END, methodReference } from "./reference.ts";

const docs = new URL("../../docs/language.md", import.meta.url);
const text = readFileSync(docs, "utf8");
const [head, rest] = text.split(BEGIN);
writeFileSync(docs, `${head}${BEGIN}\n${methodReference()}${END}${rest!.split(END)[1]}`);
writeFileSync(new URL("../../docs/language-diagrams.html", import.meta.url), createSyntaxDiagramsCode(new PipeGrammar().getSerializedGastProductions()));
