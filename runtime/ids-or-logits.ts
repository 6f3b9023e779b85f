/**
 * Below how many logits a call fetches them and chooses on the host rather than fetching the
 * graph's argmax / top-k ids (the logits-topk pass's outputs). onnxruntime's ArgMax and TopK
 * kernels cost a fixed amount a call whatever their input, which copying and scanning a few
 * hundred floats on the host undercuts; from about a thousand logits the ids pay (the figures:
 * bench/README.md). The compiler uses the same figure as logits-topk's min_vocab, since
 * onnxruntime runs those kernels on every call, fetched or not.
 */
export const MIN_LOGITS_FOR_IDS = 1024;
