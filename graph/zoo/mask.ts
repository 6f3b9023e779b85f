import type { Builder } from "../ir/builder.ts";
import { DataType } from "../ir/dtype.ts";
import type { Value } from "../ir/value.ts";

/** The external inputs every decoder reads, in the Optimum convention. */
export interface DecoderInputs {
  /** int64 [B, S]; absent in a decoder fed inputsEmbeds instead. */
  inputIds?: Value;
  /** float [B, S, hidden]: a vision-language decoder's input (its token embedding is a separate model). */
  inputsEmbeds?: Value;
  attentionMask: Value; // int64 [B, T], T = P + S
  positionIds: Value; // int64 [B, S]
}

/** The scalar length of `x` along `axis`, as int64. */
export function dimOf(b: Builder, x: Value, axis: number): Value {
  return b.op.Gather(b.op.Shape(x), b.int64(axis));
}

/**
 * Which keys each query may see, bool [B, 1, S, T]: key j is visible to query i when
 * j <= P + i (causal, queries sit at the end of the T keys) and attention_mask[b, j] is 1.
 * Built with Range/Unsqueeze/LessOrEqual/And/Expand the way HF exports build it.
 */
export function visibilityMask(b: Builder, inputs: DecoderInputs): Value {
  const T = dimOf(b, inputs.attentionMask, 1);
  const S = dimOf(b, inputs.inputIds ?? inputs.inputsEmbeds!, 1);
  const P = b.op.Sub(T, S);
  const one = b.int64(1);
  const keyIndex = b.op.Unsqueeze(b.op.Range(b.int64(0), T, one), b.int64([0])); // [1, T]
  const queryPosition = b.op.Unsqueeze(b.op.Range(P, T, one), b.int64([1])); // [S, 1]
  const causal = b.op.Unsqueeze(b.op.LessOrEqual(keyIndex, queryPosition), b.int64([0, 1])); // [1, 1, S, T]
  const padding = b.op.Unsqueeze(b.op.Cast(inputs.attentionMask, { to: DataType.BOOL }), b.int64([1, 2])); // [B, 1, 1, T]
  const B = dimOf(b, inputs.inputIds ?? inputs.inputsEmbeds!, 0);
  const shape = b.op.Concat(b.op.Unsqueeze(B, b.int64([0])), b.int64([1]), b.op.Unsqueeze(S, b.int64([0])), b.op.Unsqueeze(T, b.int64([0])), { axis: 0 });
  return b.op.Expand(b.op.And(causal, padding), shape);
}

/** The additive form, float32 [B, 1, S, T]: 0 where visible, float32's lowest where not. */
export function additiveMask(b: Builder, visible: Value): Value {
  return b.op.Where(visible, b.float32(0), b.float32(-3.4028234663852886e38));
}
