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

I/O convention (Optimum):
    inputs   input_ids                   int64   [B, S]
             attention_mask              int64   [B, P+S]
             position_ids                int64   [B, S]
             past_key_values.{i}.key     float32 [B, Hkv, P, D]
             past_key_values.{i}.value   float32 [B, Hkv, P, D]
    outputs  logits                      float32 [B, S, V]
             present.{i}.key|value       float32 [B, Hkv, P+S, D]

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
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import transformers
from torch import nn
from transformers import (
    DynamicCache,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
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

DIM_B = "batch_size"
DIM_S = "sequence_length"
DIM_P = "past_sequence_length"
DIM_T = "total_sequence_length"  # P + S


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


class KVCacheWrapper(nn.Module):
    """Flat-tensor front end: past K/V in, logits + present K/V out.

    Exporters cannot take a transformers Cache object as a graph input, so the
    past tensors are passed individually and re-packed into a DynamicCache here.
    """

    def __init__(self, model: nn.Module, layers: int):
        super().__init__()
        self.model = model
        self.layers = layers

    def forward(self, input_ids, attention_mask, position_ids, *past):
        cache = DynamicCache()
        for i in range(self.layers):
            cache.update(past[2 * i], past[2 * i + 1], i)
        out = self.model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
            past_key_values=cache, use_cache=True, return_dict=True,
        )
        present = []
        for layer in out.past_key_values.layers:
            present += [layer.keys, layer.values]
        return (out.logits, *present)


def io_names(layers: int) -> tuple[list[str], list[str]]:
    inputs = ["input_ids", "attention_mask", "position_ids"]
    outputs = ["logits"]
    for i in range(layers):
        inputs += [f"past_key_values.{i}.key", f"past_key_values.{i}.value"]
        outputs += [f"present.{i}.key", f"present.{i}.value"]
    return inputs, outputs


def example_inputs(dims: dict, B: int = 2, S: int = 3, P: int = 5):
    # P, S >= 2 so that neither exporter specialises a dynamic dim to 0 or 1.
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, dims["vocab"], (B, S), generator=g)
    mask = torch.ones(B, P + S, dtype=torch.int64)
    pos = torch.arange(P, P + S, dtype=torch.int64).unsqueeze(0).expand(B, S).contiguous()
    past = []
    for _ in range(dims["layers"]):
        for _ in range(2):
            past.append(torch.randn(B, dims["kv_heads"], P, dims["head_dim"], generator=g))
    return (ids, mask, pos, *past)


def export_torchscript(wrapper, dims, path: Path):
    in_names, out_names = io_names(dims["layers"])
    axes = {
        "input_ids": {0: DIM_B, 1: DIM_S},
        "attention_mask": {0: DIM_B, 1: DIM_T},
        "position_ids": {0: DIM_B, 1: DIM_S},
        "logits": {0: DIM_B, 1: DIM_S},
    }
    for n in in_names[3:]:
        axes[n] = {0: DIM_B, 2: DIM_P}
    for n in out_names[1:]:
        axes[n] = {0: DIM_B, 2: DIM_T}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings are expected and checked by the ORT run
        torch.onnx.export(
            wrapper, example_inputs(dims), str(path), dynamo=False,
            input_names=in_names, output_names=out_names, dynamic_axes=axes,
            opset_version=17, do_constant_folding=True,
        )


def export_dynamo(wrapper, dims, path: Path):
    in_names, out_names = io_names(dims["layers"])
    Dim = torch.export.Dim
    b, s, p, t = Dim(DIM_B, max=64), Dim(DIM_S, max=4096), Dim(DIM_P, max=4096), Dim(DIM_T, max=8192)
    shapes = {
        "input_ids": {0: b, 1: s},
        "attention_mask": {0: b, 1: t},
        "position_ids": {0: b, 1: s},
        "past": tuple({0: b, 2: p} for _ in in_names[3:]),
    }
    program = torch.onnx.export(
        wrapper, example_inputs(dims), dynamo=True, dynamic_shapes=shapes,
        input_names=in_names, output_names=out_names, external_data=False,
        opset_version=18, optimize=True,
    )
    program.save(str(path), external_data=False)


EXPORTERS = {"torchscript": export_torchscript, "dynamo": export_dynamo}


def empty_past(dims: dict, B: int = 1) -> list[torch.Tensor]:
    return [torch.zeros(B, dims["kv_heads"], 0, dims["head_dim"]) for _ in range(2 * dims["layers"])]


@torch.no_grad()
def torch_greedy(wrapper: KVCacheWrapper, dims: dict, prompt: list[int]):
    """Greedy decode through the same wrapper the exporter saw; returns tokens,
    the last-position logits of every step and the smallest top-1/top-2 gap."""
    ids = torch.tensor([prompt])
    past = empty_past(dims)
    tokens, step_logits, min_gap = [], [], float("inf")
    pos0 = 0
    for _ in range(MAX_NEW_TOKENS):
        S = ids.shape[1]
        mask = torch.ones(1, pos0 + S, dtype=torch.int64)
        pos = torch.arange(pos0, pos0 + S).unsqueeze(0)
        logits, *past = wrapper(ids, mask, pos, *past)
        last = logits[0, -1]
        top2 = torch.topk(last, 2).values
        min_gap = min(min_gap, float(top2[0] - top2[1]))
        nxt = int(last.argmax())
        tokens.append(nxt)
        step_logits.append(logits[0].numpy() if pos0 == 0 else last.numpy()[None])
        pos0 += S
        ids = torch.tensor([[nxt]])
    return tokens, step_logits, min_gap


@torch.no_grad()
def hf_generate(model: nn.Module, prompt: list[int]) -> list[int]:
    ids = torch.tensor([prompt])
    out = model.generate(
        input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
        max_new_tokens=MAX_NEW_TOKENS, min_new_tokens=MAX_NEW_TOKENS,
        eos_token_id=None, pad_token_id=0,
    )
    return out[0, len(prompt):].tolist()


def ort_greedy(path: Path, dims: dict, prompt: list[int]):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    in_names, out_names = io_names(dims["layers"])
    past = [np.zeros((1, dims["kv_heads"], 0, dims["head_dim"]), np.float32) for _ in in_names[3:]]
    ids = np.array([prompt], np.int64)
    tokens, step_logits, pos0 = [], [], 0
    for _ in range(MAX_NEW_TOKENS):
        S = ids.shape[1]
        feed = {
            "input_ids": ids,
            "attention_mask": np.ones((1, pos0 + S), np.int64),
            "position_ids": np.arange(pos0, pos0 + S, dtype=np.int64)[None],
        }
        feed.update(zip(in_names[3:], past))
        logits, *past = sess.run(out_names, feed)
        nxt = int(logits[0, -1].argmax())
        tokens.append(nxt)
        step_logits.append(logits[0] if pos0 == 0 else logits[0, -1:])
        pos0 += S
        ids = np.array([[nxt]], np.int64)
    return tokens, step_logits


def strip_debug_metadata(m: onnx.ModelProto) -> None:
    """Drop the dynamo exporter's per-node debug annotations (FX node text, module
    namespace, class hierarchy). They carry no semantics but are ~40% of the
    file for models this small. TorchScript exports have none."""
    for n in m.graph.node:
        del n.metadata_props[:]
    for vi in list(m.graph.value_info) + list(m.graph.input) + list(m.graph.output):
        del vi.metadata_props[:]
    for init in m.graph.initializer:
        del init.metadata_props[:]


def describe_io(path: Path) -> dict:
    m = onnx.load(str(path))
    def fmt(vi):
        tt = vi.type.tensor_type
        shape = [d.dim_param or d.dim_value for d in tt.shape.dim]
        return {"name": vi.name, "dtype": onnx.TensorProto.DataType.Name(tt.elem_type).lower(), "shape": shape}
    inits = {i.name for i in m.graph.initializer}
    return {
        "opset": max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")),
        "inputs": [fmt(v) for v in m.graph.input if v.name not in inits],
        "outputs": [fmt(v) for v in m.graph.output],
    }


def build(family: str, exporter: str) -> dict:
    model = make_model(family)
    dims = model_dims(model)
    wrapper = KVCacheWrapper(model, dims["layers"]).eval()
    out = OUT_DIR / f"{family}-{exporter}"

    # Reference tokens first: the wrapper loop must agree with HF generate,
    # otherwise the wrapper (not the exporter) is wrong.
    ref = []
    for prompt in PROMPTS:
        toks, logits, gap = torch_greedy(wrapper, dims, prompt)
        gen = hf_generate(model, prompt)
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
            o_toks, o_logits = ort_greedy(tmp_path, dims, prompt)
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
