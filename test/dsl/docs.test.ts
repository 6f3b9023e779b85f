import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { METHODS_BEGIN, METHODS_END, methodReference } from "../../compiler/methods/reference.ts";

describe("docs/language.md", () => {
  it("lists every method and default the schema has (regenerate with npx tsx dsl/docs.ts)", () => {
    const text = readFileSync(resolve(import.meta.dirname, "../../docs/language.md"), "utf8");
    const section = text.split(METHODS_BEGIN)[1]!.split(METHODS_END)[0]!;
    expect(section).toBe(`\n${methodReference()}`);
  });
});
