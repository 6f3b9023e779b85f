import type { Rule } from "../../graph/rewrite/index.ts";
import { decomposedAttentionRule } from "./decomposed.ts";
import { msAttentionRule } from "./ms-attention.ts";
import { msGroupQueryAttentionRule } from "./ms-group-query-attention.ts";
import { msMultiHeadAttentionRule } from "./ms-multi-head-attention.ts";
import { onnxAttentionRule } from "./onnx-attention.ts";

/** One recognition rule per attention encoding; each lifts its blocks into `pipec::Attention`. */
export const ATTENTION_RULES: readonly Rule[] = [decomposedAttentionRule, onnxAttentionRule, msMultiHeadAttentionRule, msGroupQueryAttentionRule, msAttentionRule];
