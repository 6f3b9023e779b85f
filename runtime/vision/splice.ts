// The decoder's prompt rows for a prompt with an image: the text embeddings around the image
// placeholder token, and the kept visual tokens in its place. Every row keeps the position it
// has in the unpruned prompt (DivPrune gathers position_ids rather than renumbering), so text
// after the image sits at the same positions whatever was pruned.
import { RuntimeError } from "../errors.ts";
import type { TokenEmbedder } from "../token-embedder.ts";

export interface ImagePrompt {
  /** Kept visual tokens, [kept.length * C]. */
  features: Float32Array;
  /** Their indices among the image's `tokens` visual tokens, ascending. */
  kept: readonly number[];
  /** Visual tokens before pruning. */
  tokens: number;
  /** The prompt token the image replaces. */
  tokenId: number;
  /** Drop the visual rows from the KV cache once the prompt is in (ToDRE's information migration). */
  dropAfterPrompt?: boolean;
}

/** Rows of the prompt's cache that are not visual tokens: what stays when an image's rows are dropped after the prompt. */
export function textRows(promptIds: readonly number[], image: ImagePrompt): number[] {
  const at = promptIds.indexOf(image.tokenId);
  const rows = promptIds.length - 1 + image.kept.length;
  return Array.from({ length: rows }, (_, r) => r).filter((r) => r < at || r >= at + image.kept.length);
}

export async function imagePromptRows(promptIds: readonly number[], image: ImagePrompt, embedder: TokenEmbedder): Promise<{ embeds: Float32Array; positions: number[] }> {
  const at = promptIds.indexOf(image.tokenId);
  if (at < 0) throw new RuntimeError("no-image-token", `the prompt has no image token (id ${image.tokenId}) to put the image at`);
  if (promptIds.indexOf(image.tokenId, at + 1) >= 0) throw new RuntimeError("several-image-tokens", "the prompt has more than one image token, but one image was given");
  const C = embedder.dim;
  const text = await embedder.embed(promptIds);
  const rows = promptIds.length - 1 + image.kept.length;
  const embeds = new Float32Array(rows * C);
  const positions: number[] = [];
  embeds.set(text.subarray(0, at * C), 0);
  for (let j = 0; j < at; j++) positions.push(j);
  embeds.set(image.features, at * C);
  for (const k of image.kept) positions.push(at + k);
  embeds.set(text.subarray((at + 1) * C), (at + image.kept.length) * C);
  for (let j = at + 1; j < promptIds.length; j++) positions.push(j - 1 + image.tokens);
  return { embeds, positions };
}
