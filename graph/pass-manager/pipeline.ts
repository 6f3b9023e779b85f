import { PipecError } from "../errors.ts";

/** One step of a textual pipeline: `name` or `name(key=value,...)`; values stay text until the registry converts them. */
export interface PipelineStep {
  name: string;
  options: Record<string, string>;
  /** 1-based column of the step's name in the text, for error messages. */
  column: number;
}

const NAME = /[A-Za-z_][\w-]*/y;

/**
 * Parses `dce,cse,tidal(top_k=128,mode=fast)`. Whitespace around names, keys and values is
 * ignored; a value runs to the next `,` or `)`. Errors name the column: `--passes:7: ...`.
 */
export function parsePipeline(text: string, source = "--passes"): PipelineStep[] {
  const steps: PipelineStep[] = [];
  let pos = 0;
  const fail = (message: string): never => {
    throw new PipecError("pipeline", `${message} in '${text}'`, { file: source, column: pos + 1 });
  };
  const skipSpace = () => {
    while (pos < text.length && /\s/.test(text[pos]!)) pos++;
  };
  const name = (what: string): string => {
    skipSpace();
    NAME.lastIndex = pos;
    const m = NAME.exec(text);
    if (!m) fail(`expected ${what}`);
    pos += m![0].length;
    return m![0];
  };
  if (text.trim() === "") return steps;
  for (;;) {
    skipSpace();
    const column = pos + 1;
    const step: PipelineStep = { name: name("a pass name"), options: {}, column };
    skipSpace();
    if (text[pos] === "(") {
      pos++;
      skipSpace();
      while (text[pos] !== ")") {
        const key = name("an option name");
        skipSpace();
        if (text[pos] !== "=") fail(`expected '=' after option '${key}'`);
        pos++;
        const end = text.slice(pos).search(/[,)]/);
        if (end < 0) fail(`missing ')' after the options of '${step.name}'`);
        const value = text.slice(pos, pos + end).trim();
        if (value === "") fail(`option '${key}' has no value`);
        if (key in step.options) fail(`option '${key}' is given twice`);
        step.options[key] = value;
        pos += end;
        if (text[pos] === ",") pos++;
        skipSpace();
      }
      pos++;
      skipSpace();
    }
    steps.push(step);
    if (pos === text.length) return steps;
    if (text[pos] !== ",") fail("expected ',' between passes");
    pos++;
  }
}

/** The text form of a pipeline, as parsePipeline reads it back. */
export function formatPipeline(steps: readonly Pick<PipelineStep, "name" | "options">[]): string {
  return steps
    .map((s) => {
      const opts = Object.entries(s.options).map(([k, v]) => `${k}=${v}`);
      return opts.length ? `${s.name}(${opts.join(",")})` : s.name;
    })
    .join(",");
}
