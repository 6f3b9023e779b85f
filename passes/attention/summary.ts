import type { Model } from "../../graph/ir/model.ts";
import { findAttentionBlocks } from "./index.ts";

/** What `pipec inspect` reports about attention (docs/cli.md, field `attention`). */
export interface AttentionSummary {
  /** Attention blocks recognised. */
  layers: number;
  /** Blocks per encoding, e.g. `{ "decomposed": 2 }`. */
  forms: Record<string, number>;
  blocks: { layer: number; form: string; node: string; heads: number; kvHeads: number; causal: boolean; pastKey?: string; pastValue?: string; presentKey?: string; presentValue?: string }[];
  unrecognised: { node: string; reason: string }[];
}

export function attentionSummary(model: Model): AttentionSummary {
  const report = findAttentionBlocks(model);
  return {
    layers: report.layers.length,
    forms: report.forms,
    blocks: report.layers.map((l) => ({
      layer: l.layer,
      form: l.source_form,
      node: l.node,
      heads: l.num_heads,
      kvHeads: l.kv_num_heads,
      causal: l.is_causal === 1,
      pastKey: l.past_key,
      pastValue: l.past_value,
      presentKey: l.present_key,
      presentValue: l.present_value,
    })),
    unrecognised: report.unrecognised,
  };
}

/** `attention: 2 layers (decomposed 2)` plus one line per unrecognised candidate. */
export function formatAttentionSummary(s: AttentionSummary): string[] {
  const forms = Object.entries(s.forms).map(([form, n]) => `${form} ${n}`);
  const lines = [`  attention: ${s.layers} layer${s.layers === 1 ? "" : "s"}${forms.length ? ` (${forms.join(", ")})` : ""}`];
  for (const u of s.unrecognised) lines.push(`    not recognised: ${u.node}: ${u.reason}`);
  return lines;
}
