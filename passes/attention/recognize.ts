import type { Rule } from "../../compiler/rewrite/index.ts";
import { decomposedAttentionRule } from "./decomposed.ts";

/**
 * One recognition rule per attention encoding; each lifts its blocks into `pipec::Attention`.
 * Fused ops come first so a decomposed rule never looks inside what they already cover.
 */
export const ATTENTION_RULES: readonly Rule[] = [decomposedAttentionRule];
