import { float } from "../../graph/ir/attribute.ts";
import { Builder } from "../../graph/ir/builder.ts";
import { DataType } from "../../graph/ir/dtype.ts";
import type { Model } from "../../graph/ir/model.ts";
import type { Node } from "../../graph/ir/node.ts";
import type { Value } from "../../graph/ir/value.ts";
import { buildZooModel, gpt2Config, llamaConfig, type ZooConfig } from "../../graph/zoo/index.ts";
import { mulberry32 } from "../../graph/zoo/weights.ts";
import { CANONICAL_DOMAIN } from "../../passes/attention/canonical.ts";
import { isCanonical, readCanonical } from "../../passes/attention/canonical-node.ts";
import { liftAttention } from "../../passes/attention/lift.ts";
import { shapeOf } from "../../passes/attention/ops.ts";

/**
 * Test support: seeded random spellings of a zoo model's attention that compute the same thing,
 * the way different exporters write it. The zoo model (standard Attention-23 encoding) is lifted,
 * then each canonical node is written back out with choices drawn per layer: where the scale sits
 * (scores before or after the mask, Q, K before or after its transpose, split over several) and
 * how it is spelled (Mul either order, Div by the reciprocal, Mul by Reciprocal), the mask (Add
 * either order with 0 / -big from Where, Where with a large negative fill, inverted Where), K^T
 * (Transpose, flatten / swap / unflatten, through [B, N, H, D]), repeat-KV (Expand, Tile,
 * self-Concat, a 5-D Reshape then Expand; before or after the transpose), Q merged to [B, T, H*D]
 * and split back (scaled in between or not), no-op casts, Softmax in
 * float64 between casts, the IsNaN guard, or the standard Attention op with K/V repeated before it.
 */

export const VARIANT_CONFIGS: Record<string, ZooConfig> = {
  "llama GQA 4/2": llamaConfig({ layers: 2 }),
  "llama MQA 4/1, interleaved rotary": llamaConfig({ layers: 2, kvHeads: 1, rotary: "interleaved" }),
  "qwen2 MHA with q/k/v bias": llamaConfig({ layers: 2, kvHeads: 4, qkvBias: true }),
  gpt2: gpt2Config({ layers: 2 }),
};

export interface AttentionVariant {
  seed: number;
  config: string;
  model: Model;
  /** Per layer: the choices drawn, in words. */
  choices: string[][];
  /** Per layer: the canonical facts the spelling must be recognised with. */
  expected: { heads: number; kvHeads: number; scale: number; pastKey?: string; presentValue?: string }[];
}

type Pick = <T>(options: readonly T[]) => T;

/** The variant `seed` draws: its zoo model and spelling. */
export function attentionVariant(seed: number): AttentionVariant {
  const names = Object.keys(VARIANT_CONFIGS);
  const config = names[seed % names.length]!;
  const model = buildZooModel(VARIANT_CONFIGS[config]!, { encoding: "standard" });
  liftAttention(model);
  const random = mulberry32(seed + 1);
  const pick: Pick = (options) => options[Math.floor(random() * options.length)]!;
  const canonical = model.graph.nodeArray().filter(isCanonical);
  const choices: string[][] = [];
  const expected: AttentionVariant["expected"] = [];
  canonical.forEach((node, layer) => {
    const attrs = readCanonical(node);
    expected.push({ heads: attrs.num_heads, kvHeads: attrs.kv_num_heads, scale: attrs.scale, pastKey: attrs.past_key, presentValue: attrs.present_value });
    const said: string[] = [];
    const out = respell(new Builder(model.graph, { before: node, prefix: `l${layer}_` }), node, pick, (s) => said.push(s));
    node.output(0).replaceAllUsesWith(out);
    model.graph.remove(node);
    choices.push(said);
  });
  model.opsets.delete(CANONICAL_DOMAIN);
  return { seed, config, model, choices, expected };
}

const FILLS = [-1e9, -3.4028234663852886e38];

/** One canonical node (Q [B, H, T, D], K/V [B, Hkv, N, D], bool mask, scale) written out as drawn. */
function respell(b: Builder, node: Node, pick: Pick, say: (s: string) => void): Value {
  const attrs = readCanonical(node);
  const [query, key, value, visible] = node.inputs as [Value, Value, Value, Value];
  const heads = attrs.num_heads;
  const groups = heads / attrs.kv_num_heads;
  const headDim = shapeOf(key)?.[3];
  if (typeof headDim !== "number") throw new Error(`the head size of ${node.describe()} is not known`);
  const noOpCast = (x: Value, where: string) => {
    if (!pick([false, false, true])) return x;
    say(`no-op Cast on ${where}`);
    return b.op.Cast(x, { to: DataType.FLOAT });
  };

  if (pick([false, false, false, true])) {
    const repeatKind = groups > 1 ? pick(REPEATS) : undefined;
    const repeat = (x: Value) => (repeatKind ? repeatHeads(b, x, groups, heads, [-1, headDim], repeatKind) : x);
    const additive = pick([false, true]);
    say(`standard Attention, K/V repeated by ${repeatKind ?? "nothing (MHA)"}, ${additive ? "additive" : "bool"} mask`);
    const mask = additive ? b.op.Where(visible, b.float32(0), b.float32(pick(FILLS))) : visible;
    return b.node("Attention", [query, repeat(key), repeat(value), mask], { attributes: { scale: float(attrs.scale) } }).output(0);
  }

  // Split the scale over 1 to 3 of the places it can sit.
  const places = shuffle(["scores before the mask", "scores after the mask", "Q", "K"], pick).slice(0, pick([1, 1, 2, 3]));
  const part = attrs.scale ** (1 / places.length);
  const scaled = (x: Value, place: string, where = place) => (places.includes(place) ? scale(b, x, part, pick, (s) => say(`scale ${part.toPrecision(4)} on ${where} by ${s}`)) : x);

  // Q side, possibly merged to [B, T, H*D] and split again around the scale.
  const roundTrip = pick([false, false, true]);
  if (roundTrip) say("Q merged to [B, T, H*D] and split back (Transpose/Reshape both ways)");
  const split = (x: Value) => (roundTrip ? b.op.Transpose(b.op.Reshape(x, b.int64([0, 0, heads, headDim])), { perm: [0, 2, 1, 3] }) : x);
  const merged = roundTrip ? b.op.Reshape(b.op.Transpose(query, { perm: [0, 2, 1, 3] }), b.int64([0, 0, -1])) : query;
  const q = noOpCast(split(scaled(merged, "Q")), "Q");

  // K side: the transpose, the repeat, the scale and a cast in a drawn order.
  const transposeKind = pick(["Transpose", "flatten / swap / unflatten", "via [B, N, H, D]"] as const);
  const repeatKind = groups > 1 ? pick(REPEATS) : undefined;
  const kSteps = shuffle(["transpose", "repeat", "scale", "cast"] as const, pick);
  let k = key;
  let transposed = false;
  for (const step of kSteps) {
    if (step === "transpose") {
      k = transposeKey(b, k, transposeKind);
      transposed = true;
      say(`K^T by ${transposeKind}`);
    } else if (step === "repeat" && repeatKind) {
      k = repeatHeads(b, k, groups, heads, transposed ? [headDim, -1] : [-1, headDim], repeatKind);
      say(`K repeated by ${repeatKind} ${transposed ? "after" : "before"} the transpose`);
    } else if (step === "scale") {
      k = scaled(k, "K", transposed ? "K^T" : "K");
    } else if (step === "cast") {
      k = noOpCast(k, transposed ? "K^T" : "K");
    }
  }

  // V side.
  const valueRepeat = groups > 1 ? pick(REPEATS) : undefined;
  let v = valueRepeat ? repeatHeads(b, value, groups, heads, [-1, headDim], valueRepeat) : value;
  if (valueRepeat) say(`V repeated by ${valueRepeat}`);
  v = noOpCast(v, "V");

  // Scores: scale, mask, scale, precision.
  let s = noOpCast(b.op.MatMul(q, k), "Q.K^T");
  s = scaled(s, "scores before the mask");
  const maskKind = pick(["Add(scores, mask)", "Add(mask, scores)", "Where(visible, scores, fill)", "Where(Not(visible), fill, scores)"] as const);
  const fill = pick(FILLS);
  say(`mask by ${maskKind}, fill ${fill}`);
  if (maskKind.startsWith("Add")) {
    const additive = b.op.Where(visible, b.float32(0), b.float32(fill));
    s = maskKind === "Add(scores, mask)" ? b.op.Add(s, additive) : b.op.Add(additive, s);
  } else {
    s = maskKind === "Where(visible, scores, fill)" ? b.op.Where(visible, s, b.float32(fill)) : b.op.Where(b.op.Not(visible), b.float32(fill), s);
  }
  s = scaled(s, "scores after the mask");
  const wide = pick([false, false, true]);
  const guard = pick(["none", "none", "Where(IsNaN(p), 0, p)", "no-op Cast"] as const);
  let p: Value;
  if (wide) {
    say("Softmax in float64 between Casts");
    p = b.op.Cast(b.op.Softmax(b.op.Cast(s, { to: DataType.DOUBLE }), { axis: -1 }), { to: DataType.FLOAT });
  } else {
    p = b.op.Softmax(s, { axis: -1 });
    if (guard === "no-op Cast") p = b.op.Cast(p, { to: DataType.FLOAT });
  }
  if (guard === "Where(IsNaN(p), 0, p)") p = b.op.Where(b.op.IsNaN(p), b.float32(0), p);
  if (guard !== "none") say(`guard ${guard}`);
  return b.op.MatMul(p, v);
}

const REPEATS = ["Expand", "Tile", "Concat", "5-D Reshape and Expand"] as const;
type RepeatKind = (typeof REPEATS)[number];

/** [B, Hkv, X, Y] -> [B, H, X, Y], every KV head G times in a row; `tail` is the target's [X, Y] (-1 for the unknown one). */
function repeatHeads(b: Builder, x: Value, groups: number, heads: number, tail: [number, number], kind: RepeatKind): Value {
  const shape5 = b.int64([1, 1, groups, 1, 1]);
  const target = b.int64([0, heads, ...tail]);
  if (kind === "5-D Reshape and Expand") {
    const x5 = b.op.Reshape(x, b.op.Concat(b.op.Shape(x, { start: 0, end: 2 }), b.int64([1]), b.op.Shape(x, { start: 2, end: 4 }), { axis: 0 }));
    return b.op.Reshape(b.op.Expand(x5, shape5), target);
  }
  const x5 = b.op.Unsqueeze(x, b.int64([2]));
  if (kind === "Expand") return b.op.Reshape(b.op.Expand(x5, shape5), target);
  if (kind === "Tile") return b.op.Reshape(b.op.Tile(x5, shape5), target);
  return b.op.Reshape(b.op.Concat(...Array<Value>(groups).fill(x5), { axis: 2 }), target);
}

/** K [B, Hkv, N, D] -> K^T [B, Hkv, D, N], spelled as drawn. */
function transposeKey(b: Builder, k: Value, kind: "Transpose" | "flatten / swap / unflatten" | "via [B, N, H, D]"): Value {
  if (kind === "Transpose") return b.op.Transpose(k, { perm: [0, 1, 3, 2] });
  if (kind === "via [B, N, H, D]") return b.op.Transpose(b.op.Transpose(k, { perm: [0, 2, 1, 3] }), { perm: [0, 2, 3, 1] });
  const flat = b.op.Reshape(k, b.op.Concat(b.int64([-1]), b.op.Shape(k, { start: 2, end: 4 }), { axis: 0 })); // [B*H, N, D]
  const swapped = b.op.Transpose(flat, { perm: [0, 2, 1] });
  const shape = b.op.Concat(b.op.Shape(k, { start: 0, end: 2 }), b.op.Shape(k, { start: 3, end: 4 }), b.op.Shape(k, { start: 2, end: 3 }), { axis: 0 });
  return b.op.Reshape(swapped, shape);
}

/** x scaled by c in one of the spellings exporters use. */
function scale(b: Builder, x: Value, c: number, pick: Pick, say: (how: string) => void): Value {
  const how = pick(["Mul(x, c)", "Mul(c, x)", "Div(x, 1/c)", "Mul(x, Reciprocal(1/c))"] as const);
  say(how);
  if (how === "Mul(x, c)") return b.op.Mul(x, b.float32(c));
  if (how === "Mul(c, x)") return b.op.Mul(b.float32(c), x);
  if (how === "Div(x, 1/c)") return b.op.Div(x, b.float32(1 / c));
  return b.op.Mul(x, b.op.Reciprocal(b.float32(1 / c)));
}

function shuffle<T>(items: readonly T[], pick: Pick): T[] {
  const rest = [...items];
  const out: T[] = [];
  while (rest.length > 0) out.push(rest.splice(rest.indexOf(pick(rest)), 1)[0]!);
  return out;
}
