/**
 * Below how many logits a call fetches them and chooses on the host rather than fetching the
 * graph's argmax / top-k ids (the logits-topk pass's outputs). onnxruntime's ArgMax and TopK
 * kernels cost about 12 µs a call whatever their input, which copying and scanning a few hundred
 * floats on the host undercuts. Measured one intra-op thread, ids against logits plus a host
 * argmax (median of 120 alternating runs): stories260K (V = 512) one-token steps 3% slower with
 * ids, even at 2 rows, ids 1.5-6% faster from 4 rows; sotu-tiny (V = 2048) even at one row, ids
 * 1.3-8% faster from 2. The compiler uses the same figure as logits-topk's min_vocab, since
 * onnxruntime runs those kernels on every call, fetched or not.
 */
export const MIN_LOGITS_FOR_IDS = 1024;
