import { float } from "../../graph/ir/attribute.ts";
import type { Builder } from "../../graph/ir/builder.ts";
import type { Node } from "../../graph/ir/node.ts";
import type { Value } from "../../graph/ir/value.ts";
import { CANONICAL_DOMAIN, CANONICAL_OP, type CanonicalAttentionAttrs } from "./canonical.ts";

/** The operands of a canonical node, laid out as canonical.ts describes. */
export interface CanonicalOperands {
  query_BHTD: Value;
  key_BHkvND: Value;
  value_BHkvND: Value;
  mask?: Value;
}

/** Marks a canonical node whose layer index is not known yet; lift numbers it by node order. */
export const UNKNOWN_LAYER = -1;

/** Builds one `pipec::Attention` node and returns its output [B, H, T, D]. */
export function emitCanonical(b: Builder, operands: CanonicalOperands, attrs: CanonicalAttentionAttrs): Value {
  const { query_BHTD, key_BHkvND, value_BHkvND, mask } = operands;
  const inputs = mask ? [query_BHTD, key_BHkvND, value_BHkvND, mask] : [query_BHTD, key_BHkvND, value_BHkvND];
  return b.node(CANONICAL_OP, inputs, {
    domain: CANONICAL_DOMAIN,
    attributes: { ...attrs, scale: float(attrs.scale), softcap: attrs.softcap ? float(attrs.softcap) : undefined, mask_kind: mask ? attrs.mask_kind : undefined },
  }).output(0);
}

export function isCanonical(node: Node): boolean {
  return node.op === CANONICAL_OP && node.domain === CANONICAL_DOMAIN;
}

/** The attributes of a canonical node, with the contract's defaults for absent optional ones. */
export function readCanonical(node: Node): CanonicalAttentionAttrs {
  const optional = (name: string) => node.attrString(name) ?? undefined;
  const maskKind = optional("mask_kind");
  return {
    scale: node.attrFloat("scale")!,
    num_heads: node.attrInt("num_heads")!,
    kv_num_heads: node.attrInt("kv_num_heads")!,
    softcap: node.attrFloat("softcap") || undefined,
    is_causal: node.attrInt("is_causal", 0)!,
    mask_kind: maskKind === "boolean" || maskKind === "additive" ? maskKind : undefined,
    layer: node.attrInt("layer", UNKNOWN_LAYER)!,
    source_form: optional("source_form") ?? "",
    past_key: optional("past_key"),
    past_value: optional("past_value"),
    present_key: optional("present_key"),
    present_value: optional("present_value"),
  };
}
