"""Shared pieces of the fixture exporters (tools/export_reference_models.py and
tools/export_matrix.py): a flat-tensor KV-cache front end over a transformers
decoder, the Optimum I/O names, the two torch.onnx exporters, and greedy loops in
PyTorch and in python onnxruntime that every fixture is verified with.

I/O convention (Optimum):
    inputs   input_ids                   int64   [B, S]
             attention_mask              int64   [B, P+S]
             position_ids                int64   [B, S]
             past_key_values.{i}.key     float32 [B, Hkv, P, D]
             past_key_values.{i}.value   float32 [B, Hkv, P, D]
    outputs  logits                      float32 [B, S, V]
             present.{i}.key|value       float32 [B, Hkv, P+S, D]

Tooling only: nothing in pipec or its tests imports this.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn
from transformers import DynamicCache

DIM_B = "batch_size"
DIM_S = "sequence_length"
DIM_P = "past_sequence_length"
DIM_T = "total_sequence_length"  # P + S


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


def export_torchscript(wrapper, dims, path: Path, opset: int = 17):
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
            opset_version=opset, do_constant_folding=True,
        )


def export_dynamo(wrapper, dims, path: Path, opset: int = 18, external_data: bool = False):
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
        input_names=in_names, output_names=out_names, external_data=external_data,
        opset_version=opset, optimize=True,
    )
    program.save(str(path), external_data=external_data)


def empty_past(dims: dict, B: int = 1) -> list[torch.Tensor]:
    return [torch.zeros(B, dims["kv_heads"], 0, dims["head_dim"]) for _ in range(2 * dims["layers"])]


@torch.no_grad()
def torch_greedy(wrapper: KVCacheWrapper, dims: dict, prompt: list[int], max_new_tokens: int):
    """Greedy decode through the same wrapper the exporter saw; returns tokens,
    the last-position logits of every step and the smallest top-1/top-2 gap."""
    ids = torch.tensor([prompt])
    past = empty_past(dims)
    tokens, step_logits, min_gap = [], [], float("inf")
    pos0 = 0
    for _ in range(max_new_tokens):
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
def hf_generate(model: nn.Module, prompt: list[int], max_new_tokens: int) -> list[int]:
    ids = torch.tensor([prompt])
    out = model.generate(
        input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
        max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens,
        eos_token_id=None, pad_token_id=0,
    )
    return out[0, len(prompt):].tolist()


def ort_greedy(path: Path, dims: dict, prompt: list[int], max_new_tokens: int):
    """The same loop in python onnxruntime. Inputs the graph does not declare
    (an optimiser may drop an unused position_ids) are not fed."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    declared = {i.name for i in sess.get_inputs()}
    in_names, out_names = io_names(dims["layers"])
    past = [np.zeros((1, dims["kv_heads"], 0, dims["head_dim"]), np.float32) for _ in in_names[3:]]
    ids = np.array([prompt], np.int64)
    tokens, step_logits, pos0 = [], [], 0
    for _ in range(max_new_tokens):
        S = ids.shape[1]
        feed = {
            "input_ids": ids,
            "attention_mask": np.ones((1, pos0 + S), np.int64),
            "position_ids": np.arange(pos0, pos0 + S, dtype=np.int64)[None],
        }
        feed.update(zip(in_names[3:], past))
        feed = {k: v for k, v in feed.items() if k in declared}
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
    m = onnx.load(str(path), load_external_data=False)
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
