// GlobalCom2 (Liu et al., AAAI 2026; reference code xuyang-liu16/GlobalCom2, llava_arch.py) for
// LLaVA-NeXT-style multi-crop inputs: a thumbnail of the whole image plus a grid of crops of it
// at higher resolution, each encoded on its own. The thumbnail guides the compression:
// 1. thumbnail: keep its top int(r * N) tokens by its own [CLS] attention;
// 2. crop budgets: each crop's share of the thumbnail's [CLS] attention (summed over the
//    thumbnail cells the crop covers) sets its retention, scale_c = min(1, r * (1 + soft_c -
//    mean(soft))), soft = softmax((s - max s) / 10);
// 3. per crop: score = L2-normalised own [CLS] attention + L2-normalised thumbnail attention
//    bilinearly upsampled to the crops' full-resolution grid; keep the top int(N * scale_c).
// Thumbnail tokens come first, then each crop's (row-major), as LLaVA-NeXT concatenates them.
import { RuntimeError } from "../../errors.ts";

export const GLOBALCOM2_TEMPERATURE = 10;

export interface CropTokens {
  /** [CLS] attention of each patch, [N]; the thumbnail's first, then the crops row-major. */
  clsAttention: Float32Array;
}

/**
 * Indices into the concatenation [thumbnail N, crop 0 N, ..., crop g*g-1 N] of the tokens kept,
 * ascending. `side` is the patch grid's side (N = side^2), `grid` the crops per image side.
 */
export function globalCom2(views: readonly CropTokens[], side: number, grid: number, ratio: number): number[] {
  const N = side * side;
  if (views.length !== 1 + grid * grid) throw new RuntimeError("bad-option", `GlobalCom2 needs a thumbnail and ${grid * grid} crops, got ${views.length} views`);
  if (views.some((v) => v.clsAttention.length !== N)) throw new RuntimeError("unsupported-model", "prune: globalcom2 needs the vision encoder's [CLS] attention (a cls_attention output) for every view");
  // Keeping everything is no compression (the budget formula would still move tokens between crops).
  if (ratio >= 1) return Array.from({ length: views.length * N }, (_, i) => i);
  const thumb = views[0]!.clsAttention;
  const kept: number[] = topK(thumb, Math.max(1, Math.floor(ratio * N)));

  // 2. Crop budgets from the thumbnail's attention over each crop's region.
  const cell = side / grid;
  const sums = Array.from({ length: grid * grid }, (_, c) => {
    const [cy, cx] = [Math.floor(c / grid), c % grid];
    let s = 0;
    for (let y = Math.floor(cy * cell); y < Math.floor((cy + 1) * cell); y++) for (let x = Math.floor(cx * cell); x < Math.floor((cx + 1) * cell); x++) s += thumb[y * side + x]!;
    return s;
  });
  const max = Math.max(...sums);
  const exp = sums.map((s) => Math.exp((s - max) / GLOBALCOM2_TEMPERATURE));
  const total = exp.reduce((a, b) => a + b, 0);
  const soft = exp.map((e) => e / total);
  const mean = soft.reduce((a, b) => a + b, 0) / soft.length;

  // 3. Per crop: own attention plus the upsampled thumbnail attention, each L2-normalised.
  const full = bilinearUpsample(thumb, side, side * grid);
  for (let c = 0; c < grid * grid; c++) {
    const [cy, cx] = [Math.floor(c / grid), c % grid];
    const global = new Float32Array(N);
    for (let y = 0; y < side; y++) for (let x = 0; x < side; x++) global[y * side + x] = full[(cy * side + y) * side * grid + cx * side + x]!;
    const own = normalized(views[1 + c]!.clsAttention);
    const g = normalized(global);
    const score = own.map((v, i) => v + g[i]!);
    const scale = Math.min(1, ratio * (1 + soft[c]! - mean));
    for (const i of topK(score, Math.max(1, Math.floor(N * scale)))) kept.push((1 + c) * N + i);
  }
  return kept.sort((a, b) => a - b);
}

/** Indices of the k largest values (ties: the lower index), in any order. */
function topK(values: ArrayLike<number>, k: number): number[] {
  return Array.from({ length: values.length }, (_, i) => i)
    .sort((a, b) => values[b]! - values[a]! || a - b)
    .slice(0, k);
}

function normalized(v: Float32Array): Float32Array {
  const norm = Math.sqrt(v.reduce((a, x) => a + x * x, 0));
  return norm > 0 ? v.map((x) => x / norm) : v.slice();
}

/** torch's F.interpolate(mode="bilinear", align_corners=False) of a [side, side] map to [out, out]. */
export function bilinearUpsample(map: Float32Array, side: number, out: number): Float32Array {
  const result = new Float32Array(out * out);
  const scale = side / out;
  const source = (o: number) => {
    const f = Math.max(0, (o + 0.5) * scale - 0.5);
    const i0 = Math.min(side - 1, Math.floor(f));
    return [i0, Math.min(side - 1, i0 + 1), f - i0] as const;
  };
  for (let y = 0; y < out; y++) {
    const [y0, y1, wy] = source(y);
    for (let x = 0; x < out; x++) {
      const [x0, x1, wx] = source(x);
      const top = map[y0 * side + x0]! * (1 - wx) + map[y0 * side + x1]! * wx;
      const bottom = map[y1 * side + x0]! * (1 - wx) + map[y1 * side + x1]! * wx;
      result[y * out + x] = top * (1 - wy) + bottom * wy;
    }
  }
  return result;
}
