import { Builder } from "../../graph/ir/builder.ts";
import { DataType } from "../../graph/ir/dtype.ts";
import type { Model } from "../../graph/ir/model.ts";
import { tensorType, type Dim } from "../../graph/ir/types.ts";
import { PipecError } from "../../graph/errors.ts";
import type { Pass, PassContext, PassResult } from "../../graph/pass-manager/pass.ts";
import { ARGMAX_OUTPUT, LOGITS, TOPK_INDICES_OUTPUT, TOPK_VALUES_OUTPUT } from "../../runtime/contract-names.ts";

export interface LogitsTopkOptions {
  /** Candidates per position in `logits_topk_*` (0: no TopK outputs). */
  k: number;
  /** Add `logits_argmax` [B, S]. */
  argmax: boolean;
  /**
   * Add nothing when the logits' last dimension V is known and below this (0: always add).
   * onnxruntime runs every node on every call, fetched or not, so an unused ArgMax is a cost, and
   * below about 1024 logits a call is as fast fetching them and choosing on the host (the
   * runtime's MIN_LOGITS_FOR_IDS; bench/README.md).
   */
  minVocab: number;
}

/**
 * Verifying a draft of S tokens needs per position only the argmax (greedy) or a few top
 * candidates (Token Recycling's successor lists), not [S, V] floats. This pass adds those as
 * extra outputs computed in the graph, so the runtime can fetch them and leave `logits` behind:
 *   logits_topk_values [B, S, k] float, logits_topk_indices [B, S, k] int64 (descending),
 *   logits_argmax [B, S] int64.
 */
export function createLogitsTopk(): Pass {
  return {
    name: "logits-topk",
    description: "add in-graph TopK/ArgMax outputs of the logits so [S, V] logits need not cross to the host",
    run(model: Model, ctx: PassContext): PassResult {
      const { k, argmax, minVocab } = readOptions(ctx.options);
      const logits = model.graph.outputs.find((v) => v.name === LOGITS);
      if (!logits) throw new PipecError("no-logits-output", `logits-topk needs a graph output named '${LOGITS}'`);
      const present = new Set(model.graph.outputs.map((v) => v.name));
      const b = new Builder(model.graph, { provenance: "logits-topk" });
      const shape = logits.type?.kind === "tensor" ? logits.type.shape : undefined;
      const rows: Dim[] = shape ? shape.slice(0, -1) : ["batch_size", "sequence_length"];
      const dtype = logits.type?.kind === "tensor" ? logits.type.dtype : DataType.FLOAT;
      const V = shape?.[shape.length - 1];
      if (typeof V === "number" && V < minVocab) {
        ctx.note(`logits-topk: the logits cover ${V} ids, fewer than min_vocab ${minVocab}: the host chooses from them as fast as the graph would, and onnxruntime would run TopK/ArgMax on every call, fetched or not; no outputs added`);
        return { changed: false, stats: { "outputs-added": 0, "small-vocabulary": 1 } };
      }
      let added = 0;
      if (k > 0 && !present.has(TOPK_VALUES_OUTPUT)) {
        const [values, indices] = b.node("TopK", [logits, b.int64([k])], { attributes: { axis: -1, largest: 1, sorted: 1 }, outputs: 2 }).outputs;
        b.output(values!, TOPK_VALUES_OUTPUT, tensorType(dtype, [...rows, k]));
        b.output(indices!, TOPK_INDICES_OUTPUT, tensorType(DataType.INT64, [...rows, k]));
        added += 2;
      }
      if (argmax && !present.has(ARGMAX_OUTPUT)) {
        // Ties go to the lowest id (ArgMax's default), as the runtime's host argmax does.
        b.output(b.op.ArgMax(logits, { axis: -1, keepdims: 0 }), ARGMAX_OUTPUT, tensorType(DataType.INT64, rows));
        added++;
      }
      return { changed: added > 0, stats: { "outputs-added": added } };
    },
  };
}

function readOptions(options: Readonly<Record<string, unknown>>): LogitsTopkOptions {
  const k = options.k ?? 8;
  if (typeof k !== "number" || !Number.isInteger(k) || k < 0) throw new PipecError("bad-pass-option", `logits-topk: k must be a non-negative integer, got ${JSON.stringify(k)}`);
  const minVocab = options.min_vocab ?? 0;
  if (typeof minVocab !== "number" || !Number.isInteger(minVocab) || minVocab < 0) throw new PipecError("bad-pass-option", `logits-topk: min_vocab must be a non-negative integer, got ${JSON.stringify(minVocab)}`);
  return { k, argmax: options.argmax !== false, minVocab };
}
