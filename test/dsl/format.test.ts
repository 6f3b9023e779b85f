import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { formatPipe } from "../../dsl/format.ts";
import { parsePipe } from "../../dsl/parse.ts";

const fmt = (source: string) => formatPipe(parsePipe(source).ast, source);

const MESSY = `# header

pipeline   chat{  # on the pipeline line
  model llm=onnx( "m.onnx" )   # the model


  tokenizer tok = ids
  # before the stage
  stage decode = generate(llm,tok){
    kv:streaming( sinks:4,window : 60 )
    attention: tidal(top_k: 12.5%,
       select_layers: [1,   2])
    stop: ["a\\tb"]

    # last in the block
  }
}
`;

const CANONICAL = `# header

pipeline chat {  # on the pipeline line
  model llm = onnx("m.onnx")  # the model

  tokenizer tok = ids
  # before the stage
  stage decode = generate(llm, tok) {
    kv: streaming(sinks: 4, window: 60)
    attention: tidal(top_k: 12.5%, select_layers: [1, 2])
    stop: ["a\\tb"]

    # last in the block
  }
}
`;

describe("formatPipe", () => {
  it("keeps an optional request's '?' right after its value, and a comment after it", () => {
    const source = `pipeline p {\n  stage s = generate(llm, tok) {\n    kv:   streaming( sinks: 4 ) ?   # optional\n  }\n}\n`;
    expect(fmt(source)).toBe(`pipeline p {\n  stage s = generate(llm, tok) {\n    kv: streaming(sinks: 4)?  # optional\n  }\n}\n`);
  });

  it("normalises spacing and line breaks and keeps every comment", () => {
    expect(fmt(MESSY)).toBe(CANONICAL);
  });

  it("is idempotent", () => {
    expect(fmt(CANONICAL)).toBe(CANONICAL);
  });

  it("leaves the examples as they are", () => {
    const dir = resolve(import.meta.dirname, "../../examples");
    for (const name of readdirSync(dir).filter((f) => f.endsWith(".pipe"))) {
      const source = readFileSync(join(dir, name), "utf8");
      expect(fmt(source), name).toBe(source);
    }
  });
});
