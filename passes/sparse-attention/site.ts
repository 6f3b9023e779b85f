import { Builder } from "../../compiler/ir/builder.ts";
import { DataType } from "../../compiler/ir/dtype.ts";
import type { Model } from "../../compiler/ir/model.ts";
import type { Node } from "../../compiler/ir/node.ts";
import type { Value } from "../../compiler/ir/value.ts";
import type { CanonicalAttentionAttrs } from "../attention/canonical.ts";
import { emitCanonical, readCanonical } from "../attention/canonical-node.ts";
import { dtypeOf, lowestOf, OpsetOps } from "../attention/ops.ts";

/**
 * One canonical attention node a sparse pass rewrites. The selection subgraphs are built from
 * here (inserted before the node); `attendShared` / `attendPerHead` then replace the node by a
 * canonical node over the gathered keys and values only, so lower-attention never reads the rest.
 * Causality and the node's mask travel as one additive bias gathered with the keys: a gathered
 * key keeps exactly the visibility it had.
 *
 * Lengths are kept as int64 tensors of shape [1] (TopK and Concat want them so); `scalar` turns
 * one into the scalar Range needs.
 */
export class SparseSite {
  readonly attrs: CanonicalAttentionAttrs;
  readonly ops: OpsetOps;
  readonly b: Builder;
  readonly query_BHTD: Value;
  readonly key_BHkvND: Value;
  readonly value_BHkvND: Value;
  /** T: queries in this step (1 when decoding). */
  readonly T_1: Value;
  /** N: keys in the context, past and new. */
  readonly N_1: Value;
  private biasMemo: Value | undefined | null = null;

  constructor(
    model: Model,
    readonly node: Node,
    readonly pass: string,
  ) {
    this.attrs = readCanonical(node);
    this.b = new Builder(model.graph, { before: node, provenance: pass });
    this.ops = new OpsetOps(this.b, model.opset("") ?? 1);
    const [q, k, v] = node.inputs;
    this.query_BHTD = q!;
    this.key_BHkvND = k!;
    this.value_BHkvND = v!;
    this.T_1 = this.ops.dim(q!, 2);
    this.N_1 = this.ops.dim(k!, 2);
  }

  get groups(): number {
    return this.attrs.num_heads / this.attrs.kv_num_heads;
  }

  scalar(x_1: Value): Value {
    return this.b.op.Reshape(x_1, this.b.int64([], [0]));
  }

  /** `whenDecoding` in a one-query step, `otherwise` (a prefill or a verification chunk) else. */
  decodeOnly(whenDecoding_1: Value, otherwise_1: Value): Value {
    return this.b.op.Where(this.b.op.Equal(this.T_1, this.b.int64([1])), whenDecoding_1, otherwise_1);
  }

  min(a_1: Value, b_1: Value): Value {
    return this.b.op.Where(this.b.op.Less(a_1, b_1), a_1, b_1); // Min takes int64 only from opset 12
  }

  /**
   * The `k_1` largest of `scores` along the last axis, as key indices in ascending order: the
   * gather then reads rows in cache order, and a selection of every key sums in the dense order.
   */
  topKAscending(scores: Value, k_1: Value): Value {
    const top = this.b.node("TopK", [scores, k_1], { outputs: 2, attributes: { axis: -1, largest: 1, sorted: 0 } }).output(1);
    return this.b.node("TopK", [top, k_1], { outputs: 2, attributes: { axis: -1, largest: 0, sorted: 1 } }).output(0);
  }

  /** int64 [end - start]: start, start+1, .., end-1. */
  range(start_1: Value, end_1: Value): Value {
    return this.b.op.Range(this.scalar(start_1), this.scalar(end_1), this.b.int64(1));
  }

  /**
   * float32 additive bias [B|1, 1|H, T, N] (0 where query t may see key n, the lowest float
   * where not) from the node's mask and causality; undefined when every key is visible.
   */
  bias(): Value | undefined {
    if (this.biasMemo !== null) return this.biasMemo;
    const b = this.b;
    const mask = this.node.inputs[3];
    const lowest = () => b.float32(lowestOf(DataType.FLOAT));
    let bias: Value | undefined;
    if (mask && this.attrs.mask_kind === "boolean") bias = b.op.Where(mask, b.float32(0), lowest());
    else if (mask) bias = dtypeOf(mask) === DataType.FLOAT ? mask : b.op.Cast(mask, { to: DataType.FLOAT });
    if (this.attrs.is_causal) bias = b.op.Where(this.causalVisibility(), bias ?? b.float32(0), lowest());
    this.biasMemo = bias;
    return bias;
  }

  /** bool [T, N]: query t (at absolute position N - T + t) sees key n when n <= N - T + t. */
  private causalVisibility(): Value {
    const b = this.b;
    const zero = b.int64([0]);
    const lastVisible_T = b.op.Add(this.range(zero, this.T_1), this.scalar(b.op.Sub(this.N_1, this.T_1)));
    const keys_N = this.range(zero, this.N_1);
    return b.op.Not(b.op.Greater(this.ops.unsqueeze(keys_N, [0]), this.ops.unsqueeze(lastVisible_T, [1])));
  }

  /**
   * float32 [B, H, N]: scale * q.k for the step's last query against every key (bias added when
   * `masked`). K is read once per KV head, never transposed or repeated: K [B,Hkv,N,D] times the
   * group's queries [B,Hkv,D,G]. In a decode step the last query is the only one.
   */
  lastQueryScores(masked: boolean): Value {
    const b = this.b;
    const H = this.attrs.num_heads;
    const Hkv = this.attrs.kv_num_heads;
    const widen = (x: Value) => (dtypeOf(x) === DataType.FLOAT16 ? b.op.Cast(x, { to: DataType.FLOAT }) : x);
    const last_1 = b.op.Sub(this.T_1, b.int64([1]));
    const query_BHD = b.op.Gather(widen(this.query_BHTD), this.scalar(last_1), { axis: 2 });
    const query_BHkvDG = b.op.Transpose(b.op.Reshape(query_BHD, b.int64([0, Hkv, this.groups, -1])), { perm: [0, 1, 3, 2] });
    const scores_BHkvNG = b.op.MatMul(widen(this.key_BHkvND), query_BHkvDG);
    const scores_BHkvGN = b.op.Transpose(scores_BHkvNG, { perm: [0, 1, 3, 2] });
    let scores_BHN = b.op.Mul(b.op.Reshape(scores_BHkvGN, b.int64([0, H, -1])), b.float32(this.attrs.scale));
    const bias = masked ? this.bias() : undefined;
    if (bias) scores_BHN = b.op.Add(scores_BHN, b.op.Gather(bias, this.scalar(last_1), { axis: 2 }));
    return scores_BHN;
  }

  /** Replaces the node by attention over keys `keep_K` (one index set for every head). */
  attendShared(keep_K: Value): void {
    const b = this.b;
    const bias = this.bias();
    this.replace({
      key: b.op.Gather(this.key_BHkvND, keep_K, { axis: 2 }),
      value: b.op.Gather(this.value_BHkvND, keep_K, { axis: 2 }),
      mask: bias && b.op.Gather(bias, keep_K, { axis: 3 }),
      kvHeads: this.attrs.kv_num_heads,
    });
  }

  /**
   * Replaces the node by attention where query head h reads keys `keep_BHK[:, h]` only. Each KV
   * head gathers the rows its G query heads chose ([B, Hkv, G*K, D]), so K and V are read at the
   * selected rows and never repeated to H heads. The rows are gathered whole from K viewed as
   * [B*Hkv*N, D] (a row copy each; GatherElements would index every element).
   */
  attendPerHead(keep_BHK: Value): void {
    const b = this.b;
    const ops = this.ops;
    const H = this.attrs.num_heads;
    const Hkv = this.attrs.kv_num_heads;
    const B_1 = ops.dim(this.query_BHTD, 0);
    const keep_BHkvGK = b.op.Reshape(keep_BHK, b.int64([0, Hkv, -1]));
    // Row of (b, j, n) in the flattened cache: (b*Hkv + j)*N + n.
    const heads_BHkv1 = b.op.Reshape(this.range(b.int64([0]), b.op.Mul(B_1, b.int64([Hkv]))), b.int64([-1, Hkv, 1]));
    const rows_BHkvGK = b.op.Add(b.op.Mul(heads_BHkv1, this.N_1), keep_BHkvGK);
    const rowShape = b.op.Concat(b.int64([-1]), ops.dim(this.key_BHkvND, 3), { axis: 0 });
    const gather = (x_BHkvND: Value) => b.op.Reshape(b.op.Gather(b.op.Reshape(x_BHkvND, rowShape), rows_BHkvGK, { axis: 0 }), b.int64([0, H, -1, 0]));
    const bias = this.bias();
    let mask: Value | undefined;
    if (bias) {
      const full_BHTN = b.op.Expand(bias, b.op.Concat(B_1, b.int64([H]), this.T_1, this.N_1, { axis: 0 }));
      const keep_BHTK = b.op.Expand(ops.unsqueeze(keep_BHK, [2]), b.op.Concat(B_1, b.int64([H]), this.T_1, ops.dim(keep_BHK, 2), { axis: 0 }));
      mask = b.op.GatherElements(full_BHTN, keep_BHTK, { axis: 3 });
    }
    this.replace({ key: gather(this.key_BHkvND), value: gather(this.value_BHkvND), mask, kvHeads: H });
  }

  private replace(sel: { key: Value; value: Value; mask?: Value; kvHeads: number }): void {
    const out = emitCanonical(
      this.b,
      { query_BHTD: this.query_BHTD, key_BHkvND: sel.key, value_BHkvND: sel.value, mask: sel.mask },
      { ...this.attrs, kv_num_heads: sel.kvHeads, is_causal: 0, mask_kind: sel.mask ? "additive" : undefined, source_form: `${this.attrs.source_form}+${this.pass}` },
    );
    this.node.output(0).replaceAllUsesWith(out);
    this.node.graph!.remove(this.node);
  }
}

/** True for a canonical node a sparse pass already rewrote (its keys are a selection). */
export function isSparse(node: Node): boolean {
  return (node.attrString("source_form") ?? "").includes("+");
}
