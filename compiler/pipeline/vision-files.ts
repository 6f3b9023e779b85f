import { copyFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { ModelFacts } from "../../dsl/facts.ts";
import type { ModelNode } from "./ir.ts";

/**
 * Files a multimodal model is run with, beside it (transformers.js / Optimum names): a vision
 * encoder's image settings, a decoder's token embedding model. Lowering checks they exist.
 */
export function visionCompanions(facts: ModelFacts): string[] {
  return facts.vision ? ["preprocessor_config.json"] : facts.embedsDim !== undefined ? ["embed_tokens.onnx"] : [];
}

/** Copies them, unchanged, beside the compiled model. */
export function copyVisionCompanions(m: ModelNode, outDir: string): void {
  for (const name of visionCompanions(m.facts)) copyFileSync(join(dirname(m.path), name), join(outDir, name));
}
