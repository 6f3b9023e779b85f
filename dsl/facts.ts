/**
 * What the checker needs to know about a model to check a pipeline against it. The DSL knows
 * nothing of ONNX: the compiler reads these from the model files and passes them in.
 */
export interface ModelFacts {
  /** Decoder layers (one past/present KV pair each). */
  layers: number;
  heads?: number;
  kvHeads?: number;
  headDim?: number;
  /** Last dimension of the logits, when fixed. */
  vocabSize?: number;
  /** Longest sequence the model addresses: from its config, else its position tables; absent when unknown. */
  maxPositions?: number;
  kvInputs: string[];
  kvOutputs: string[];
  /** A decoder fed inputs_embeds [B, S, C] (vision-language): C. */
  embedsDim?: number;
  /** A vision encoder (pixel_values in, visual tokens [B, Nv, C] out; layers is 0). */
  vision?: { tokens?: number; dim: number };
}

/** Facts of the model at an absolute path, or a one-line reason it could not be read. */
export type FactsProvider = (path: string) => ModelFacts | { error: string };
