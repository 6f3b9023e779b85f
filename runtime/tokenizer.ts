// Text <-> token ids. A Hugging Face tokenizer.json is read with @huggingface/tokenizers
// (pure JS, no dependencies; see docs/runtime.md for why), or the runtime works on ids alone.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { RuntimeError } from "./errors.ts";

export interface TextTokenizer {
  encode(text: string): number[];
  decode(ids: readonly number[]): string;
  /** Highest id it can produce + 1. */
  readonly vocabSize: number;
  /** The end-of-sequence id named by tokenizer_config.json, if any. */
  readonly eosTokenId?: number;
}

interface TokenizerJson {
  model?: { vocab?: Record<string, number> | [string, number][] };
  added_tokens?: { id: number; content: string }[];
}

function vocabIds(json: TokenizerJson): number[] {
  const vocab = json.model?.vocab;
  // BPE/WordPiece store {token: id}; Unigram stores [token, score] pairs indexed by position.
  const ids = Array.isArray(vocab) ? vocab.map((_, i) => i) : Object.values(vocab ?? {});
  return ids.concat((json.added_tokens ?? []).map((t) => t.id));
}

function tokenContent(token: unknown): string | undefined {
  if (typeof token === "string") return token;
  if (token && typeof token === "object" && typeof (token as { content?: unknown }).content === "string") return (token as { content: string }).content;
  return undefined;
}

/** Loads `tokenizer.json` (and `tokenizer_config.json` beside it, when present). */
export function loadTokenizer(path: string): TextTokenizer {
  if (!existsSync(path)) throw new RuntimeError("tokenizer-not-found", `tokenizer file ${path} does not exist`);
  let json: TokenizerJson;
  let config: Record<string, unknown> = {};
  try {
    json = JSON.parse(readFileSync(path, "utf8"));
    const configPath = join(dirname(path), "tokenizer_config.json");
    if (existsSync(configPath)) config = JSON.parse(readFileSync(configPath, "utf8"));
  } catch (e) {
    throw new RuntimeError("bad-tokenizer", `cannot read tokenizer ${path}: ${(e as Error).message}`);
  }
  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(json, config);
  } catch (e) {
    throw new RuntimeError("bad-tokenizer", `cannot build tokenizer from ${path}: ${(e as Error).message.split("\n")[0]}`);
  }
  const vocabSize = Math.max(-1, ...vocabIds(json)) + 1;
  const eosText = tokenContent(config.eos_token);
  const eosTokenId = eosText === undefined ? undefined : tokenizer.encode(eosText, { add_special_tokens: false }).ids[0];
  return {
    encode: (text) => tokenizer.encode(text).ids,
    // The library rejects an empty list; empty text is the answer.
    decode: (ids) => (ids.length === 0 ? "" : tokenizer.decode(ids as number[], { skip_special_tokens: true })),
    vocabSize,
    eosTokenId,
  };
}
