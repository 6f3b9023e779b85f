#!/usr/bin/env python3
"""Export small, randomly initialised decoder-only LMs to ONNX as reference fixtures.

These stand in for the ONNX files users already have (Optimum / transformers.js
style exports with KV-cache I/O). For every family x exporter combination that
works we write

    test/fixtures/reference/<family>-<exporter>/model.onnx
    test/fixtures/reference/<family>-<exporter>/expected.json

where expected.json holds PyTorch's greedy continuations of fixed prompts. Before
writing anything the export is checked with python onnxruntime: a prefill + decode
loop (present.* fed back as past_key_values.*) must reproduce the PyTorch tokens
exactly and the logits must agree within LOGITS_ATOL at every step.

I/O convention (Optimum): see tools/hf_onnx_export.py, shared with
tools/export_matrix.py.

Usage: python tools/export_reference_models.py [--only llama-dynamo ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import transformers
from torch import nn
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from hf_onnx_export import (
    KVCacheWrapper,
    describe_io,
    export_dynamo,
    export_torchscript,
    ort_greedy,
    strip_debug_metadata,
    torch_greedy,
    hf_generate,
)

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "test" / "fixtures" / "reference"

SEED = 1234
VOCAB = 384
MAX_NEW_TOKENS = 24
LOGITS_ATOL = 1e-4
# Weights are drawn with a std well above the transformers default (0.02): with
# tiny random models and std 0.02 all logits sit within ~1e-3 of each other, so
# the greedy argmax would hinge on float rounding and differ between runtimes.
INIT_STD = 0.25
# Greedy steps whose top-1/top-2 logit gap is below this are considered fragile
# (a different, but still correct, kernel could flip them). We report the
# smallest gap in expected.json and refuse to write a fixture below it.
MIN_SAFE_MARGIN = 1e-3

PROMPTS: list[list[int]] = [
    [1, 5, 9, 23],
    [1, 17, 42, 99, 7, 256, 31, 8, 150, 77, 3, 64],
    [1, 200, 13, 55, 89, 144, 233, 21, 34, 2, 300, 11, 19, 29, 37,
     41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 97, 101, 103, 107],
]
LOGITS_CHECK_PROMPT = 1

def make_model(family: str) -> nn.Module:
    torch.manual_seed(SEED)
    # Eager attention: explicit MatMul/Softmax/mask arithmetic, which is what
    # Optimum-style exports of these families contain and what both exporters
    # handle without SDPA-specific fallbacks.
    common = dict(attn_implementation="eager")
    if family == "llama":
        cfg = LlamaConfig(
            vocab_size=VOCAB, hidden_size=64, intermediate_size=128,
            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=256, initializer_range=INIT_STD,
            tie_word_embeddings=False, bos_token_id=None, eos_token_id=None, pad_token_id=None, **common,
        )
        model = LlamaForCausalLM(cfg)
    elif family == "qwen2":
        # Qwen2 always has q/k/v biases; they are zero-initialised by
        # transformers, so we randomise them below to make them matter.
        cfg = Qwen2Config(
            vocab_size=VOCAB, hidden_size=64, intermediate_size=128,
            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=256, initializer_range=INIT_STD,
            tie_word_embeddings=False, use_sliding_window=False,
            bos_token_id=None, eos_token_id=None, pad_token_id=None, **common,
        )
        model = Qwen2ForCausalLM(cfg)
    elif family == "gpt2":
        cfg = GPT2Config(
            vocab_size=VOCAB, n_embd=64, n_layer=2, n_head=4, n_positions=256,
            initializer_range=INIT_STD, bos_token_id=None, eos_token_id=None, pad_token_id=None, **common,
        )
        model = GPT2LMHeadModel(cfg)
    else:
        raise ValueError(family)
    # Biases (and norm weights) are initialised to 0/1 by transformers; give them
    # random values so that bias handling is actually exercised by the fixtures.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name or ".ln_" in name:
                p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def model_dims(model: nn.Module) -> dict:
    c = model.config
    if c.model_type == "gpt2":
        layers, heads, kv_heads, hidden = c.n_layer, c.n_head, c.n_head, c.n_embd
    else:
        layers, heads, kv_heads, hidden = (
            c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads, c.hidden_size)
    return dict(
        model_type=c.model_type, layers=layers, heads=heads, kv_heads=kv_heads,
        head_dim=hidden // heads, hidden=hidden, vocab=c.vocab_size,
        max_positions=c.max_position_embeddings if c.model_type != "gpt2" else c.n_positions,
        intermediate=getattr(c, "intermediate_size", None) or 4 * hidden,
        init_std=INIT_STD, seed=SEED,
    )


EXPORTERS = {"torchscript": export_torchscript, "dynamo": export_dynamo}


def build(family: str, exporter: str) -> dict:
    model = make_model(family)
    dims = model_dims(model)
    wrapper = KVCacheWrapper(model, dims["layers"]).eval()
    out = OUT_DIR / f"{family}-{exporter}"

    # Reference tokens first: the wrapper loop must agree with HF generate,
    # otherwise the wrapper (not the exporter) is wrong.
    ref = []
    for prompt in PROMPTS:
        toks, logits, gap = torch_greedy(wrapper, dims, prompt, MAX_NEW_TOKENS)
        gen = hf_generate(model, prompt, MAX_NEW_TOKENS)
        if gen != toks:
            raise RuntimeError(f"wrapper loop {toks} != generate {gen} for prompt {prompt}")
        ref.append((toks, logits, gap))

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp) / "model.onnx"
        EXPORTERS[exporter](wrapper, dims, tmp_path)
        # Re-save through onnx to guarantee a single self-contained file.
        m = onnx.load(str(tmp_path), load_external_data=True)
        strip_debug_metadata(m)
        onnx.save_model(m, str(tmp_path), save_as_external_data=False)
        onnx.checker.check_model(str(tmp_path))

        max_err = 0.0
        for prompt, (toks, t_logits, _) in zip(PROMPTS, ref):
            o_toks, o_logits = ort_greedy(tmp_path, dims, prompt, MAX_NEW_TOKENS)
            if o_toks != toks:
                raise RuntimeError(f"ORT tokens {o_toks} != torch {toks} for prompt {prompt}")
            for a, b in zip(t_logits, o_logits):
                if a.shape != b.shape:
                    raise RuntimeError(f"logits shape {b.shape} != {a.shape}")
                max_err = max(max_err, float(np.abs(a - b).max()))
        if max_err > LOGITS_ATOL:
            raise RuntimeError(f"ORT logits differ from torch by {max_err:.3g} > {LOGITS_ATOL}")
        min_gap = min(g for _, _, g in ref)
        if min_gap < MIN_SAFE_MARGIN:
            raise RuntimeError(f"greedy top-1/top-2 gap {min_gap:.3g} too small; change SEED/INIT_STD")

        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        shutil.copy(tmp_path, out / "model.onnx")

    check_logits = ref[LOGITS_CHECK_PROMPT][1][0]  # prefill logits [S, V]
    expected = {
        "family": family,
        "exporter": exporter,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
        "config": dims,
        "io": describe_io(out / "model.onnx"),
        "max_new_tokens": MAX_NEW_TOKENS,
        "prompts": [
            {"input_ids": p, "greedy": toks, "min_top2_gap": round(gap, 6)}
            for p, (toks, _, gap) in zip(PROMPTS, ref)
        ],
        "logits_check": {
            "prompt": LOGITS_CHECK_PROMPT,
            "position": int(check_logits.shape[0] - 1),
            "first8": [float(x) for x in check_logits[-1, :8]],
            "atol": LOGITS_ATOL,
        },
        "ort_python_max_abs_logit_err": max_err,
    }
    (out / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")
    return expected


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", help="e.g. llama-dynamo gpt2-torchscript")
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))

    results = {}
    for family in ("llama", "qwen2", "gpt2"):
        for exporter in EXPORTERS:
            key = f"{family}-{exporter}"
            if args.only and key not in args.only:
                continue
            print(f"== {key}", flush=True)
            try:
                exp = build(family, exporter)
                size = (OUT_DIR / key / "model.onnx").stat().st_size
                results[key] = f"ok ({size} bytes, max logit err {exp['ort_python_max_abs_logit_err']:.2g})"
            except Exception as e:  # a failing variant is reported and skipped, never faked
                traceback.print_exc()
                results[key] = f"FAILED: {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
            print(f"   {results[key]}", flush=True)
    print("\nsummary:")
    for k, v in results.items():
        print(f"  {k:20s} {v}")
    return 0 if all(v.startswith("ok") for v in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
