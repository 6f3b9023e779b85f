import { readFileSync } from "node:fs";

/**
 * The number of token ids a Hugging Face tokenizer.json can produce (largest id + 1, added tokens
 * included), or a one-line reason it cannot be read. Checked against the model's vocabulary.
 */
export function tokenizerVocabSize(path: string): number | { error: string } {
  let json: { model?: { vocab?: Record<string, number> | unknown[] }; added_tokens?: { id: number }[] };
  try {
    json = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    return { error: e instanceof SyntaxError ? "not a tokenizer.json: the file is not valid JSON" : `cannot read the tokenizer: ${(e as Error).message}` };
  }
  const vocab = json.model?.vocab;
  // BPE and WordPiece map token -> id; Unigram lists [token, score] pairs whose index is the id.
  let max = Array.isArray(vocab) ? vocab.length - 1 : -1;
  if (vocab && !Array.isArray(vocab)) for (const id of Object.values(vocab)) if (id > max) max = id;
  for (const t of json.added_tokens ?? []) if (t.id > max) max = t.id;
  return max < 0 ? { error: "the tokenizer.json has no vocabulary" } : max + 1;
}
