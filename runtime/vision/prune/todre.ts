// ToDRE (Li, Yang, Lu et al., arXiv 2505.18757; no reference code), as pipec carries it out:
// 1. diversity: greedy k-center on the visual tokens' cosine distances (DivPrune's loop),
//    seeded with the token the vision encoder's [CLS] attends to most rather than DivPrune's
//    farthest-from-its-neighbour token;
// 2. information migration: once the prompt has gone through the decoder, the visual tokens'
//    information lives on in the text tokens' keys and values, so the kept visual rows are
//    dropped from the KV cache and decoding attends to the text alone. The paper drops
//    task-irrelevant visual tokens by cross-modal attention at a late layer and all of them
//    from certain layers on; dropping all of them after the prompt, from every layer, is the
//    variant a decoder exported as one graph allows.
import { RuntimeError } from "../../errors.ts";
import { cosineDistances } from "./cosine.ts";
import { divPruneOrder, type Distances } from "./divprune.ts";

/** Indices (ascending) of the `keep` visual tokens ToDRE's diversity stage keeps. */
export function toDreDiversity(x: Float32Array, n: number, dim: number, keep: number, clsAttention: Float32Array | undefined, distances: Distances = cosineDistances(x, n, dim)): number[] {
  if (!clsAttention) throw new RuntimeError("unsupported-model", "prune: todre seeds its selection with the vision encoder's [CLS] attention, but the encoder has no cls_attention output");
  let seed = 0;
  for (let i = 1; i < n; i++) if (clsAttention[i]! > clsAttention[seed]!) seed = i;
  return divPruneOrder(distances, n, keep, seed).sort((a, b) => a - b);
}
