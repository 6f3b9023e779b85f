import { headDim, kvHeads, type AttentionEncoding, type ZooConfig } from "./config.ts";

/** The architecture facts a runtime needs to drive a model, written as `config.json` beside it. */
export interface ModelFacts {
  family: ZooConfig["family"];
  encoding: AttentionEncoding;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  hidden: number;
  vocabSize: number;
  maxPositions: number;
  ropeTheta?: number;
  rotary?: string;
  bosTokenId: number;
  eosTokenId: number;
}

export function modelFacts(c: ZooConfig, encoding: AttentionEncoding): ModelFacts {
  return {
    family: c.family,
    encoding,
    layers: c.layers,
    heads: c.heads,
    kvHeads: kvHeads(c),
    headDim: headDim(c),
    hidden: c.hidden,
    vocabSize: c.vocabSize,
    maxPositions: c.maxPositions,
    ...(c.family === "llama" ? { ropeTheta: c.ropeTheta, rotary: c.rotary } : {}),
    bosTokenId: c.bosTokenId,
    eosTokenId: c.eosTokenId,
  };
}
