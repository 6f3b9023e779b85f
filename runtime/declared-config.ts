// What a model's folder declares about it beside the ONNX file: the position limit and the
// end-of-sequence ids, from whichever config an exporter wrote.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";

/** What exporters write next to the model: genai_config.json, a transformers config.json, or pipec's zoo config.json. */
export interface DeclaredConfig {
  maxPositions?: number;
  eosTokenIds: number[];
}

export function readDeclaredConfig(modelPath: string): DeclaredConfig {
  const dir = dirname(modelPath);
  const read = (file: string): any => (existsSync(join(dir, file)) ? JSON.parse(readFileSync(join(dir, file), "utf8")) : undefined);
  const source = read("genai_config.json")?.model ?? read("config.json") ?? {};
  const maxPositions = source.context_length ?? source.max_position_embeddings ?? source.n_positions ?? source.maxPositions;
  const eos = source.eos_token_id ?? source.eosTokenId;
  return {
    maxPositions: typeof maxPositions === "number" ? maxPositions : undefined,
    eosTokenIds: (Array.isArray(eos) ? eos : eos === undefined ? [] : [eos]).filter((id: unknown): id is number => typeof id === "number"),
  };
}
