#!/usr/bin/env python3
"""The Python baselines of bench/real-export.ts (a bench tool, never a test dependency).

    python bench/ort_baseline.py optimize SRC.onnx DST.onnx
        onnxscript's optimize_for_ort, as a user runs it (onnx_ir load, optimize_for_ort,
        save with external data). Prints JSON: load/optimize/save/total wall ms, CPU ms,
        peak RSS (MiB), the fused ops it produced.

    python bench/ort_baseline.py decode MODEL.onnx PROMPT_TOKENS NEW_TOKENS THREADS
        onnxruntime's own Python loop: one InferenceSession, a plain KV-cache greedy loop
        (present.* fed back as past_key_values.*, mask and positions rebuilt each step,
        full logits to numpy, argmax of the last row). The same prompt twice: "cold" is the
        process's first generation, "warm" the second. Prints JSON like
        bench/real-export-decode-child.ts.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections import Counter


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_ms() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return (r.ru_utime + r.ru_stime) * 1000


def optimize(src: str, dst: str) -> dict:
    import onnx_ir as ir
    from onnxscript.rewriter.ort_fusions import optimize_for_ort

    t0, c0 = time.perf_counter(), cpu_ms()
    model = ir.load(src)
    t1 = time.perf_counter()
    model, _stats = optimize_for_ort(model)
    t2 = time.perf_counter()
    # Weights over 2 GiB cannot live in the protobuf: external data, as the input had.
    ir.save(model, dst, external_data=dst.rsplit("/", 1)[-1] + ".data")
    t3 = time.perf_counter()
    ops = Counter(f"{n.domain}::{n.op_type}" if n.domain else n.op_type for n in model.graph)
    fused = {k: v for k, v in ops.items() if k.startswith("com.microsoft::")}
    return {
        "loadMs": (t1 - t0) * 1000, "optimizeMs": (t2 - t1) * 1000, "saveMs": (t3 - t2) * 1000,
        "wallMs": (t3 - t0) * 1000, "cpuMs": cpu_ms() - c0, "maxRssMiB": peak_rss_mib(),
        "nodes": sum(ops.values()), "fused": fused,
    }


def bench_prompt(length: int) -> list[int]:
    """bench/runtime-child.ts's benchPrompt: the same ids."""
    return [3 + ((i * 7919 + 13) % 4000) for i in range(length)]


def decode(path: str, prompt_len: int, new_tokens: int, threads: int) -> dict:
    import numpy as np
    import onnxruntime as ort

    t0 = time.perf_counter()
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    load_ms = (time.perf_counter() - t0) * 1000
    inputs = {i.name: i for i in sess.get_inputs()}
    past_names = [n for n in inputs if n.startswith("past_key_values.")]
    out_names = [o.name for o in sess.get_outputs()]
    present_names = [n for n in out_names if n.startswith("present.")]

    def empty_past(name: str):
        shape = [1 if a == 0 else (d if isinstance(d, int) else 0) for a, d in enumerate(inputs[name].shape)]
        return np.zeros(shape, np.float32)

    def run() -> dict:
        prompt = bench_prompt(prompt_len)
        past = {n: empty_past(n) for n in past_names}
        ids = np.array([prompt], np.int64)
        tokens, pos0 = [], 0
        start = time.perf_counter()
        prefill_ms = 0.0
        decode_start = cpu_start = 0.0
        for step in range(new_tokens):
            S = ids.shape[1]
            feed = {
                "input_ids": ids,
                "attention_mask": np.ones((1, pos0 + S), np.int64),
                "position_ids": np.arange(pos0, pos0 + S, dtype=np.int64)[None],
                **past,
            }
            feed = {k: v for k, v in feed.items() if k in inputs}
            outs = dict(zip(out_names, sess.run(out_names, feed)))
            nxt = int(outs["logits"][0, -1].argmax())
            tokens.append(nxt)
            past = {p: outs[q] for p, q in zip(past_names, present_names)}
            pos0 += S
            ids = np.array([[nxt]], np.int64)
            if step == 0:
                prefill_ms = (time.perf_counter() - start) * 1000
                decode_start, cpu_start = time.perf_counter(), cpu_ms()
        decode_s = time.perf_counter() - decode_start
        decode_cpu_s = (cpu_ms() - cpu_start) / 1000
        return {
            "tokens": tokens, "prefillMs": prefill_ms,
            "decodeTokensPerSecond": (new_tokens - 1) / decode_s,
            "tokensPerCpuSecond": (new_tokens - 1) / decode_cpu_s,
            "totalMs": (time.perf_counter() - start) * 1000,
        }

    cold = run()
    warm = run()
    return {"loadMs": load_ms, "cold": cold, "warm": warm, "peakRssMiB": peak_rss_mib()}


def main() -> int:
    cmd, *args = sys.argv[1:]
    if cmd == "optimize":
        result = optimize(args[0], args[1])
    elif cmd == "decode":
        result = decode(args[0], int(args[1]), int(args[2]), int(args[3]))
    else:
        raise SystemExit(f"unknown command {cmd!r}: optimize or decode")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
