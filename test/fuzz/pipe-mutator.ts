// A grammar-aware mutator of .pipe files: it cuts the text into the language's tokens and edits
// token sequences (drop, repeat, swap, replace with another word of the language, nest, cut off),
// so most cases get past the lexer and exercise the parser, the checker and the lowering.
import { Random } from "./random.ts";

const TOKEN = /\s+|#[^\n]*|"(?:[^"\\\n]|\\.)*"?|[A-Za-z_][\w.-]*|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|[^]/gy;

/** Words, numbers and punctuation of the language, and values a user could get wrong. */
const VOCABULARY = [
  "pipeline", "model", "tokenizer", "stage", "generate", "onnx", "hf", "ids", "kv", "attention", "speculate", "sampling",
  "full", "streaming", "dense", "tidal", "tokenselect", "lookup", "self", "draft", "recycle", "greedy", "sample",
  "max_tokens", "stop", "device", "cpu", "auto", "cuda", "webgpu", "sinks", "window", "top_k", "temperature", "seed",
  "skip", "ngram", "max_draft", "layers", "selection_cache", "input", "true", "false",
  "{", "}", "(", ")", "[", "]", ":", ",", "=", "\n", " ", "..", "-",
  "0", "1", "-1", "0.5", "1e309", "99999999999999999999", "4294967296", "NaN", "-0",
  '""', '"nowhere.onnx"', '"/"', '"../../../../etc/passwd"', '"\\u0000"', '"日本語"', `"${"x".repeat(300)}"`,
];

export interface PipeSeed {
  name: string;
  text: string;
}

export interface PipeCase {
  name: string;
  bytes: Uint8Array;
}

function tokens(text: string): string[] {
  TOKEN.lastIndex = 0;
  return [...text.matchAll(TOKEN)].map((m) => m[0]);
}

type Mutation = (t: string[], r: Random) => string[];

const MUTATIONS: Record<string, Mutation> = {
  drop: (t, r) => t.toSpliced(r.int(t.length), 1),
  repeat: (t, r) => {
    const i = r.int(t.length);
    return t.toSpliced(i, 0, ...Array<string>(1 + r.int(4)).fill(t[i]!));
  },
  swap: (t, r) => {
    const [i, j] = [r.int(t.length), r.int(t.length)];
    const out = [...t];
    [out[i], out[j]] = [out[j]!, out[i]!];
    return out;
  },
  replace: (t, r) => t.toSpliced(r.int(t.length), 1, r.pick(VOCABULARY)),
  insert: (t, r) => t.toSpliced(r.int(t.length + 1), 0, r.pick(VOCABULARY)),
  cutOff: (t, r) => t.slice(0, r.int(t.length)),
  nest: (t, r) => t.toSpliced(r.int(t.length + 1), 0, r.pick(["(", "{", "["]).repeat(1 + r.int(3000))),
  repeatLine: (t, r) => {
    const lines = t.join("").split("\n");
    const i = r.int(lines.length);
    return tokens(lines.toSpliced(i, 0, ...Array<string>(50 + r.int(500)).fill(lines[i]!)).join("\n"));
  },
  longWord: (t, r) => t.toSpliced(r.int(t.length + 1), 0, "w".repeat(1000 + r.int(100_000))),
  unterminated: (t, r) => t.toSpliced(r.int(t.length + 1), 0, r.pick(['"', '"abc', "#", "(", "{"])),
  crlf: (t) => tokens(t.join("").replaceAll("\n", "\r\n")),
  byteOrderMark: (t) => ["\ufeff", ...t],
};

/** A binary byte inside text: the file is no longer text (the "not a .pipe file" path). */
function withControlByte(text: string, r: Random): Uint8Array {
  const bytes = new TextEncoder().encode(text);
  const out = new Uint8Array(bytes.length + 1);
  const at = r.int(bytes.length + 1);
  out.set(bytes.subarray(0, at));
  out[at] = r.pick([0, 1, 0x1b, 0xff, 0xc0]);
  out.set(bytes.subarray(at), at + 1);
  return out;
}

/** `n` mutated .pipe files from the seeds, the same for the same `seed`. */
export function* pipeCases(seeds: readonly PipeSeed[], n: number, seed: number): Generator<PipeCase> {
  const r = new Random(seed);
  const names = Object.keys(MUTATIONS);
  for (let i = 0; i < n; i++) {
    const from = r.pick(seeds);
    let t = tokens(from.text);
    const applied: string[] = [];
    for (let k = 1 + r.int(3); k > 0 && t.length > 0; k--) {
      const name = r.pick(names);
      t = MUTATIONS[name]!(t, r);
      applied.push(name);
    }
    const text = t.join("");
    const binary = r.chance(0.03);
    yield { name: `pipe#${i} ${from.name} ${binary ? "control-byte" : applied.join("+")}`, bytes: binary ? withControlByte(text, r) : new TextEncoder().encode(text) };
  }
}
