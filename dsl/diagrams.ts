// Writes docs/language-diagrams.html: railroad diagrams of the .pipe grammar, generated from the
// Chevrotain parser itself so they cannot drift from it. Run: npx tsx dsl/diagrams.ts
import { writeFileSync } from "node:fs";
import { createSyntaxDiagramsCode } from "chevrotain";
import { PipeGrammar } from "./grammar.ts";

const html = createSyntaxDiagramsCode(new PipeGrammar().getSerializedGastProductions());
writeFileSync(new URL("../docs/language-diagrams.html", import.meta.url), html);
