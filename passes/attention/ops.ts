import type { Builder } from "../../graph/ir/builder.ts";
import { DataType } from "../../graph/ir/dtype.ts";
import type { Dim } from "../../graph/ir/types.ts";
import type { Value } from "../../graph/ir/value.ts";

/**
 * Standard-op building blocks shared by the lift and lower rewrites, in forms valid at the
 * model's default-domain opset (Unsqueeze and Split took attributes before opset 13).
 */
export class OpsetOps {
  constructor(
    readonly b: Builder,
    readonly opset: number,
  ) {}

  unsqueeze(x: Value, axes: number[]): Value {
    return this.opset >= 13 ? this.b.op.Unsqueeze(x, this.b.int64(axes)) : this.b.op.Unsqueeze(x, { axes });
  }

  /** Splits the last axis into `sizes.length` parts. */
  split(x: Value, axis: number, sizes: number[]): Value[] {
    const inputs = this.opset >= 13 ? [x, this.b.int64(sizes)] : [x];
    const attributes = this.opset >= 13 ? { axis } : { axis, split: sizes };
    return this.b.node("Split", inputs, { outputs: sizes.length, attributes }).outputs as Value[];
  }

  /** x[..., start:end:step] on one axis. */
  slice(x: Value, axis: number, start: number, end: number, step = 1): Value {
    const b = this.b;
    return b.op.Slice(x, b.int64([start]), b.int64([end]), b.int64([axis]), b.int64([step]));
  }

  /** Dimension `axis` of x as a 1-element int64 tensor. */
  dim(x: Value, axis: number): Value {
    return this.opset >= 15 ? this.b.op.Shape(x, { start: axis, end: axis + 1 }) : this.b.op.Gather(this.b.op.Shape(x), this.b.int64([axis]));
  }

  /** [B, S, heads*D] -> [B, heads, S, D] (query_BSHD to query_BHSD). */
  toHeads(x: Value, heads: number): Value {
    return this.b.op.Transpose(this.b.op.Reshape(x, this.b.int64([0, 0, heads, -1])), { perm: [0, 2, 1, 3] });
  }

  /** [B, heads, S, D] -> [B, S, heads*D]. */
  fromHeads(x: Value): Value {
    return this.b.op.Reshape(this.b.op.Transpose(x, { perm: [0, 2, 1, 3] }), this.b.int64([0, 0, -1]));
  }
}

export function shapeOf(v: Value | undefined): Dim[] | undefined {
  return v?.type?.kind === "tensor" ? v.type.shape : undefined;
}

export function dtypeOf(v: Value | undefined): number | undefined {
  return v?.type?.kind === "tensor" ? v.type.dtype : undefined;
}

/** softcap * tanh(scores / softcap): float32 scores kept within (-softcap, softcap), as Gemma 2 does. */
export function capScores(b: Builder, scores: Value, softcap: number): Value {
  return b.op.Mul(b.op.Tanh(b.op.Div(scores, b.float32(softcap))), b.float32(softcap));
}

/** The most negative finite value of a float dtype: the fill for masked scores. */
export function lowestOf(dtype: number): number {
  return dtype === DataType.FLOAT16 ? -65504 : -3.4028234663852886e38;
}
