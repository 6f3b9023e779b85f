import { Builder } from "../../graph/ir/builder.ts";
import { DataType } from "../../graph/ir/dtype.ts";
import type { Graph } from "../../graph/ir/graph.ts";
import type { Model } from "../../graph/ir/model.ts";
import type { Node } from "../../graph/ir/node.ts";
import type { Value } from "../../graph/ir/value.ts";
import type { CanonicalAttentionAttrs } from "../attention/canonical.ts";
import { readCanonical } from "../attention/canonical-node.ts";
import { dtypeOf, lowestOf, OpsetOps } from "../attention/ops.ts";
import { cacheConcat, type CacheRows } from "../kv/kv-split-attention.ts";
import { PAST_KEY_VALUES_PREFIX } from "../../runtime/contract-names.ts";

/**
 * One canonical attention node a sparse pass rewrites. The selection subgraphs are built from
 * here (inserted before the node); `attendShared` / `attendPerHead` (attend-selected.ts) then replace the node by
 * attention over the gathered keys and values only, so nothing reads the rest. Causality and
 * the node's mask travel as one additive bias gathered with the keys: a gathered key keeps
 * exactly the visibility it had.
 *
 * With `splitCache`, when K and V are Concat(past input, new rows) (a decoder's KV cache), the
 * site never reads that Concat: selections choose among the PAST rows, gathers read the past
 * buffer, and the step's S new rows (the most recent ones) are always attended, as a second
 * score block (float32; a Concat after the gathered rows otherwise). The cache Concat is then
 * left to the present output alone, which kv-append-only drops.
 *
 * Lengths are kept as int64 tensors of shape [1] (TopK and Concat want them so); `scalar` turns
 * one into the scalar Range needs.
 */
export class SparseSite {
  readonly attrs: CanonicalAttentionAttrs;
  /** Where new nodes go: before the node, or into a branch while `buildIn` runs. */
  ops: OpsetOps;
  b: Builder;
  readonly query_BHTD: Value;
  readonly key_BHkvND: Value;
  readonly value_BHkvND: Value;
  /** T: queries in this step (1 when decoding). */
  readonly T_1: Value;
  /** N: keys in the context, past and new. */
  readonly N_1: Value;
  /** The past buffer and the new rows of K and V, when they reach the node as a cache Concat. */
  readonly cache?: { key: CacheRows; value: CacheRows; P_1: Value };
  /** Keys a selection chooses among: the past rows (P) with a cache, else every key (N). */
  readonly selectable_1: Value;
  private biasMemo: Value | undefined | null = null;

  /** `splitCache`: read a cache Concat's past and new rows apart (see above); off, the site reads K and V as the node does. */
  constructor(
    model: Model,
    readonly node: Node,
    readonly pass: string,
    options: { splitCache?: boolean } = {},
  ) {
    this.attrs = readCanonical(node);
    this.b = new Builder(model.graph, { before: node, provenance: pass });
    this.ops = new OpsetOps(this.b, model.opset("") ?? 1);
    const [q, k, v] = node.inputs;
    this.query_BHTD = q!;
    this.key_BHkvND = k!;
    this.value_BHkvND = v!;
    this.T_1 = this.ops.dim(q!, 2);
    const pastInputs = new Set(options.splitCache ? model.graph.inputs.filter((i) => i.name.startsWith(PAST_KEY_VALUES_PREFIX)) : []);
    const key = cacheConcat(k, pastInputs);
    const value = cacheConcat(v, pastInputs);
    if (key && value) {
      const P_1 = this.ops.dim(key.past, 2);
      this.cache = { key, value, P_1 };
      this.N_1 = this.b.op.Add(P_1, this.ops.dim(key.rows, 2));
      this.selectable_1 = P_1;
    } else {
      this.N_1 = this.ops.dim(k!, 2);
      this.selectable_1 = this.N_1;
    }
  }

  /**
   * Runs `build` with new nodes going to the end of `graph` (an If branch reading this graph's
   * values as its outer scope), and returns what it built. Values needed after the branch
   * (the bias, the lengths) must be built before, outside it.
   */
  buildIn<T>(graph: Graph, build: () => T): T {
    const [b, ops] = [this.b, this.ops];
    this.b = new Builder(graph, { provenance: this.pass });
    this.ops = new OpsetOps(this.b, ops.opset);
    try {
      return build();
    } finally {
      [this.b, this.ops] = [b, ops];
    }
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
    const b = this.b;
    const top = b.node("TopK", [scores, k_1], { outputs: 2, attributes: { axis: -1, largest: 1, sorted: 0 } }).output(1);
    if (this.ops.opset < 11) return b.node("TopK", [top, k_1], { outputs: 2, attributes: { axis: -1, largest: 0, sorted: 1 } }).output(0);
    // Ordered by marking the chosen keys and listing the marks: NonZero walks row-major, so each
    // row's keys come out ascending, exactly k per row (TopK's indices are distinct), at about
    // half the cost of a second TopK sorting the indices.
    const marks = b.op.ScatterElements(b.op.ConstantOfShape(b.op.Shape(scores)), top, b.op.Expand(b.float32(1), b.op.Shape(top)), { axis: -1 });
    const lastCoordinate = b.op.Gather(b.op.NonZero(marks), b.int64(-1), { axis: 0 });
    // Leading axes from the scores, the last inferred: Reshape reads a 0 (an empty first step's k) as "keep that axis".
    const shape = b.op.Concat(b.op.Slice(b.op.Shape(top), b.int64([0]), b.int64([-1])), b.int64([-1]), { axis: 0 });
    return b.op.Reshape(lastCoordinate, shape);
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
   * float32 [B, H, M]: scale * q.k for the step's last query against every selectable key (the
   * past rows with a cache, else all N; bias added when `masked`). K is read once per KV head,
   * never repeated: the group's queries [B,Hkv,G,D] times K^T. In a decode step the last query
   * is the only one.
   */
  selectableScores(masked: boolean): Value {
    const b = this.b;
    const H = this.attrs.num_heads;
    const Hkv = this.attrs.kv_num_heads;
    const widen = (x: Value) => (dtypeOf(x) === DataType.FLOAT16 ? b.op.Cast(x, { to: DataType.FLOAT }) : x);
    const last = this.scalar(b.op.Sub(this.T_1, b.int64([1])));
    const query_BHD = b.op.Gather(widen(this.query_BHTD), last, { axis: 2 });
    // q.K^T with K transposed in the MatMul (onnxruntime fuses it into one GEMM with transB):
    // as K.q it is a one-column GEMM, markedly slower.
    const query_BHkvGD = b.op.Reshape(query_BHD, b.int64([0, Hkv, this.groups, -1]));
    const keyT_BHkvDM = b.op.Transpose(widen(this.cache?.key.past ?? this.key_BHkvND), { perm: [0, 1, 3, 2] });
    const scores_BHkvGM = b.op.MatMul(query_BHkvGD, keyT_BHkvDM);
    // Explicit [B, H, M]: -1 is ambiguous when M = 0 (a first step's empty past).
    const shape_BHM = b.op.Concat(b.int64([0, H]), this.selectable_1, { axis: 0 });
    let scores_BHM = b.op.Mul(b.op.Reshape(scores_BHkvGM, shape_BHM), b.float32(this.attrs.scale));
    const bias = masked ? this.selectableBias() : undefined;
    if (bias) scores_BHM = b.op.Add(scores_BHM, b.op.Gather(bias, last, { axis: 2 }));
    return scores_BHM;
  }

  /**
   * int64 [1]: keys the step's last query may see. A percentage budget is a share of these: an
   * append-only cache feeds its whole buffer and masks the spare rows, which are not context.
   * The canonical bias is 0 where visible and a large negative where not.
   */
  visible_1(): Value {
    const bias = this.bias();
    if (!bias) return this.N_1;
    const b = this.b;
    const row = b.op.Gather(bias, this.scalar(b.op.Sub(this.T_1, b.int64([1]))), { axis: 2 });
    const seen = b.op.Cast(b.op.Not(b.op.Less(row, b.float32(0))), { to: DataType.FLOAT });
    // The count as the mean over the keys times N (ReduceMean takes its axes as an input from opset 18).
    const mean = this.ops.opset >= 18 ? b.op.ReduceMean(seen, b.int64([-1]), { keepdims: 0 }) : b.op.ReduceMean(seen, { axes: [-1], keepdims: 0 });
    const perRow = b.op.Mul(b.op.ReduceMax(mean, { keepdims: 0 }), b.op.Cast(this.N_1, { to: DataType.FLOAT }));
    return b.op.Reshape(b.op.Cast(b.op.Round(perRow), { to: DataType.INT64 }), b.int64([1]));
  }

  /**
   * int64 [1]: one past the last of the first `end_1` keys that the step's last query sees (0 when
   * it sees none). An append-only buffer holds its rows as a prefix and masks the spare rows after
   * them; a sliding-window layer masks the oldest rows instead, so a count of the visible keys
   * (visible_1) is not where the rows end.
   */
  visibleEnd_1(end_1: Value): Value {
    const bias = this.bias();
    if (!bias) return end_1;
    const b = this.b;
    const row = b.op.Gather(bias, this.scalar(b.op.Sub(this.T_1, b.int64([1]))), { axis: 2 });
    const first = b.op.Slice(row, b.int64([0]), end_1, b.int64([-1]));
    const seen = b.op.Cast(b.op.Not(b.op.Less(first, b.float32(0))), { to: DataType.FLOAT });
    const ordinals = b.op.Cast(this.range(b.int64([1]), b.op.Add(end_1, b.int64([1]))), { to: DataType.FLOAT });
    // A 0 joins the products so that an empty past (a first step) reduces to 0.
    const ends = b.op.Concat(b.op.Reshape(b.op.Mul(seen, ordinals), b.int64([-1])), b.float32([0]), { axis: 0 });
    const last = this.ops.opset >= 18 ? b.op.ReduceMax(ends, b.int64([0]), { keepdims: 0 }) : b.op.ReduceMax(ends, { axes: [0], keepdims: 0 });
    return b.op.Reshape(b.op.Cast(last, { to: DataType.INT64 }), b.int64([1]));
  }

  /** The bias over the selectable keys [.., T, M] (the past part with a cache). */
  selectableBias(): Value | undefined {
    const bias = this.bias();
    return bias && this.cache ? this.b.op.Slice(bias, this.b.int64([0]), this.cache.P_1, this.b.int64([3])) : bias;
  }

  /** The bias over the new rows [.., T, S] (with a cache). */
  newRowsBias(): Value | undefined {
    const bias = this.bias();
    return bias && this.cache ? this.b.op.Slice(bias, this.cache.P_1, this.b.int64([Number.MAX_SAFE_INTEGER]), this.b.int64([3])) : undefined;
  }
}

/** True for a canonical node a sparse pass already rewrote (its keys are a selection). */
export function isSparse(node: Node): boolean {
  return (node.attrString("source_form") ?? "").includes("+");
}
