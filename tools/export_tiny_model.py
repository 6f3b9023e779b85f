#!/usr/bin/env python3
"""Export a trained tiny Llama (HF checkpoint from tools/train_tiny_model.py) to:

  OUT/model.onnx      Optimum-style decoder-with-past ONNX (weights inline), opset 17
  OUT/model.bin       llama2.c "v0" checkpoint (interleaved rotary layout)
  OUT/tokenizer.json  (+ tokenizer_config.json) copied from the checkpoint
  OUT/config.json     architecture summary for pipec

and verify:
  * onnxruntime prefill + N decode steps (present fed back as past) reproduce the
    greedy tokens of PyTorch `generate` on a few prompts, and past length 0 works;
  * a numpy llama2.c-style forward pass of model.bin matches the HF logits (1e-4).

Tooling only: the pipec product never needs Python.

    python3 tools/export_tiny_model.py --ckpt /tmp/tiny-sotu-run/checkpoint \
        --out examples/models/sotu-tiny
"""
import argparse
import json
import os
import shutil
import struct
import sys

import numpy as np
import torch


def log(*a):
    print(*a, flush=True)


def load_model(ckpt):
    from transformers import LlamaForCausalLM
    model = LlamaForCausalLM.from_pretrained(ckpt, attn_implementation="eager", torch_dtype=torch.float32)
    model.eval()
    model.config.use_cache = True
    return model


class OnnxWrapper(torch.nn.Module):
    """Flat Optimum-style I/O around LlamaForCausalLM with a DynamicCache."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.n_layers = model.config.num_hidden_layers

    def forward(self, input_ids, attention_mask, position_ids, *past):
        from transformers import DynamicCache
        cache = DynamicCache(config=self.model.config)
        for i in range(self.n_layers):
            layer = cache.layers[i]
            k, v = past[2 * i], past[2 * i + 1]
            # Fill the layer directly (DynamicLayer.update would concatenate onto an
            # empty 1-D placeholder, which does not export cleanly).
            layer.dtype, layer.device = k.dtype, k.device
            layer.keys, layer.values = k, v
            layer.is_initialized = True
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         past_key_values=cache, use_cache=True, return_dict=True)
        presents = []
        for layer in out.past_key_values.layers:
            presents.extend([layer.keys, layer.values])
        return (out.logits, *presents)


def export_onnx(model, path, opset):
    cfg = model.config
    L, Hkv = cfg.num_hidden_layers, cfg.num_key_value_heads
    D = cfg.hidden_size // cfg.num_attention_heads if getattr(cfg, "head_dim", None) is None else cfg.head_dim
    wrapper = OnnxWrapper(model).eval()
    B, P, S = 2, 3, 4  # trace with non-trivial past so no zero-length special case is baked in
    input_ids = torch.randint(3, cfg.vocab_size, (B, S), dtype=torch.int64)
    attention_mask = torch.ones(B, P + S, dtype=torch.int64)
    position_ids = torch.arange(P, P + S, dtype=torch.int64).unsqueeze(0).expand(B, S).contiguous()
    past = []
    for _ in range(L):
        past += [torch.randn(B, Hkv, P, D), torch.randn(B, Hkv, P, D)]
    in_names = ["input_ids", "attention_mask", "position_ids"]
    out_names = ["logits"]
    dyn = {"input_ids": {0: "batch_size", 1: "sequence_length"},
           "attention_mask": {0: "batch_size", 1: "total_sequence_length"},
           "position_ids": {0: "batch_size", 1: "sequence_length"},
           "logits": {0: "batch_size", 1: "sequence_length"}}
    for i in range(L):
        for kv in ("key", "value"):
            n = f"past_key_values.{i}.{kv}"
            in_names.append(n)
            dyn[n] = {0: "batch_size", 2: "past_sequence_length"}
    for i in range(L):
        for kv in ("key", "value"):
            n = f"present.{i}.{kv}"
            out_names.append(n)
            dyn[n] = {0: "batch_size", 2: "total_sequence_length"}
    with torch.no_grad():
        torch.onnx.export(wrapper, (input_ids, attention_mask, position_ids, *past), path,
                          input_names=in_names, output_names=out_names, dynamic_axes=dyn,
                          opset_version=opset, do_constant_folding=True, dynamo=False)
    import onnx
    m = onnx.load(path)
    if cfg.tie_word_embeddings:
        dedupe_tied_classifier(m)
    onnx.checker.check_model(m)
    m.producer_name = "pipec tools/export_tiny_model.py"
    onnx.save(m, path)
    return in_names, out_names


def dedupe_tied_classifier(m):
    """With tied embeddings, constant folding stores embed^T as a second initializer
    for the lm_head MatMul. Replace it by Transpose(embed) so the weight is stored once."""
    from onnx import helper, numpy_helper
    g = m.graph
    inits = {i.name: i for i in g.initializer}
    emb_name = next(n.input[0] for n in g.node if n.op_type == "Gather" and "embed_tokens" in n.name)
    emb = numpy_helper.to_array(inits[emb_name])
    for node in g.node:
        if node.op_type != "MatMul" or node.output[0] != "logits" or node.input[1] not in inits:
            continue
        w = numpy_helper.to_array(inits[node.input[1]])
        if w.shape == emb.T.shape and np.array_equal(w, emb.T):
            old = node.input[1]
            node.input[1] = "lm_head.weight_transposed"
            g.node.insert(0, helper.make_node("Transpose", [emb_name], ["lm_head.weight_transposed"],
                                              name="/lm_head/TiedTranspose", perm=[1, 0]))
            g.initializer.remove(inits[old])
            log(f"tied classifier: replaced initializer {old} by Transpose({emb_name})")
            return
    log("tied classifier: no duplicated initializer found")


def ort_greedy(sess, cfg, prompt_ids, n_new):
    L, Hkv = cfg.num_hidden_layers, cfg.num_key_value_heads
    D = cfg.head_dim
    ids = np.array([prompt_ids], dtype=np.int64)
    past = {}
    for i in range(L):
        past[f"past_key_values.{i}.key"] = np.zeros((1, Hkv, 0, D), np.float32)
        past[f"past_key_values.{i}.value"] = np.zeros((1, Hkv, 0, D), np.float32)
    out_tokens = []
    P = 0
    cur = ids
    first_logits = None
    for step in range(n_new):
        S = cur.shape[1]
        feeds = {"input_ids": cur, "attention_mask": np.ones((1, P + S), np.int64),
                 "position_ids": np.arange(P, P + S, dtype=np.int64)[None, :], **past}
        outs = sess.run(None, feeds)
        names = [o.name for o in sess.get_outputs()]
        res = dict(zip(names, outs))
        if first_logits is None:
            first_logits = res["logits"]
        nxt = int(np.argmax(res["logits"][0, -1]))
        out_tokens.append(nxt)
        for i in range(L):
            past[f"past_key_values.{i}.key"] = res[f"present.{i}.key"]
            past[f"past_key_values.{i}.value"] = res[f"present.{i}.value"]
            assert res[f"present.{i}.key"].shape == (1, Hkv, P + S, D)
        P += S
        cur = np.array([[nxt]], dtype=np.int64)
    return out_tokens, first_logits


# ---------------------------------------------------------------- llama2.c v0

def hf_to_interleaved(w, n_heads, head_dim):
    """Inverse of HF's convert_llama_weights_to_hf permute(): for each head, rows
    [first half | second half] (HF rotate_half) -> interleaved pairs (2i, 2i+1)."""
    dim_in = w.shape[1]
    return (w.reshape(n_heads, 2, head_dim // 2, dim_in)
             .transpose(0, 2, 1, 3)
             .reshape(n_heads * head_dim, dim_in))


def write_llama2c(model, path):
    cfg = model.config
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    dim, hidden, L = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    H, Hkv, V, T = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.vocab_size, cfg.max_position_embeddings
    hd = cfg.head_dim
    assert hd * H == dim, "llama2.c v0 requires head_dim * n_heads == dim"
    emb = sd["model.embed_tokens.weight"]
    cls = sd.get("lm_head.weight", emb)
    shared = bool(cfg.tie_word_embeddings) or np.array_equal(cls, emb)
    theta = cfg.rope_parameters["rope_theta"] if getattr(cfg, "rope_parameters", None) else cfg.rope_theta
    with open(path, "wb") as f:
        f.write(struct.pack("7i", dim, hidden, L, H, Hkv, V if shared else -V, T))

        def w(a):
            f.write(np.ascontiguousarray(a, dtype=np.float32).tobytes())

        p = "model.layers.{}."
        w(emb)
        for i in range(L): w(sd[p.format(i) + "input_layernorm.weight"])
        for i in range(L): w(hf_to_interleaved(sd[p.format(i) + "self_attn.q_proj.weight"], H, hd))
        for i in range(L): w(hf_to_interleaved(sd[p.format(i) + "self_attn.k_proj.weight"], Hkv, hd))
        for i in range(L): w(sd[p.format(i) + "self_attn.v_proj.weight"])
        for i in range(L): w(sd[p.format(i) + "self_attn.o_proj.weight"])
        for i in range(L): w(sd[p.format(i) + "post_attention_layernorm.weight"])
        for i in range(L): w(sd[p.format(i) + "mlp.gate_proj.weight"])   # w1
        for i in range(L): w(sd[p.format(i) + "mlp.down_proj.weight"])   # w2
        for i in range(L): w(sd[p.format(i) + "mlp.up_proj.weight"])     # w3
        w(sd["model.norm.weight"])
        freqs = 1.0 / (theta ** (np.arange(0, hd, 2, dtype=np.float64)[: hd // 2] / hd))
        ang = np.outer(np.arange(T, dtype=np.float64), freqs)
        w(np.cos(ang))
        w(np.sin(ang))
        if not shared:
            w(cls)
    return shared


def read_llama2c(path):
    raw = open(path, "rb").read()
    dim, hidden, L, H, Hkv, V, T = struct.unpack("7i", raw[:28])
    shared = V > 0
    V = abs(V)
    a = np.frombuffer(raw, dtype=np.float32, offset=28)
    hd = dim // H
    kv = Hkv * hd
    o = 0

    def take(*shape):
        nonlocal o
        n = int(np.prod(shape))
        r = a[o:o + n].reshape(shape)
        o += n
        return r

    m = dict(dim=dim, hidden=hidden, L=L, H=H, Hkv=Hkv, V=V, T=T, hd=hd)
    m["emb"] = take(V, dim)
    m["rms_att"] = take(L, dim)
    m["wq"] = take(L, dim, dim)
    m["wk"] = take(L, kv, dim)
    m["wv"] = take(L, kv, dim)
    m["wo"] = take(L, dim, dim)
    m["rms_ffn"] = take(L, dim)
    m["w1"] = take(L, hidden, dim)
    m["w2"] = take(L, dim, hidden)
    m["w3"] = take(L, hidden, dim)
    m["rms_final"] = take(dim)
    m["fcr"] = take(T, hd // 2)
    m["fci"] = take(T, hd // 2)
    m["wcls"] = m["emb"] if shared else take(V, dim)
    assert o == a.size, (o, a.size)
    return m


def llama2c_forward(m, tokens, eps=1e-5):
    """llama2.c run.c forward(), token by token with a KV cache, in float64 numpy."""
    dim, L, H, Hkv, hd = m["dim"], m["L"], m["H"], m["Hkv"], m["hd"]
    kv_mul = H // Hkv
    f = lambda x: x.astype(np.float64)
    kc = np.zeros((L, len(tokens), Hkv * hd))
    vc = np.zeros((L, len(tokens), Hkv * hd))

    def rms(x, w):
        return w * (x / np.sqrt(np.mean(x * x) + eps))

    logits_all = []
    for pos, tok in enumerate(tokens):
        x = f(m["emb"][tok]).copy()
        for l in range(L):
            xb = rms(x, f(m["rms_att"][l]))
            q = f(m["wq"][l]) @ xb
            k = f(m["wk"][l]) @ xb
            v = f(m["wv"][l]) @ xb
            fr, fi = f(m["fcr"][pos]), f(m["fci"][pos])
            for vec, nh in ((q, H), (k, Hkv)):
                r = vec.reshape(nh, hd // 2, 2)
                v0, v1 = r[..., 0].copy(), r[..., 1].copy()
                r[..., 0] = v0 * fr - v1 * fi
                r[..., 1] = v0 * fi + v1 * fr
            kc[l, pos], vc[l, pos] = k, v
            att_out = np.zeros(dim)
            for h in range(H):
                qh = q[h * hd:(h + 1) * hd]
                kvh = h // kv_mul
                ks = kc[l, :pos + 1, kvh * hd:(kvh + 1) * hd]
                vs = vc[l, :pos + 1, kvh * hd:(kvh + 1) * hd]
                s = ks @ qh / np.sqrt(hd)
                s = np.exp(s - s.max())
                s /= s.sum()
                att_out[h * hd:(h + 1) * hd] = s @ vs
            x = x + f(m["wo"][l]) @ att_out
            xb = rms(x, f(m["rms_ffn"][l]))
            h1 = f(m["w1"][l]) @ xb
            h3 = f(m["w3"][l]) @ xb
            x = x + f(m["w2"][l]) @ ((h1 / (1 + np.exp(-h1))) * h3)
        x = rms(x, f(m["rms_final"]))
        logits_all.append(f(m["wcls"]) @ x)
    return np.stack(logits_all)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True, help="HF checkpoint dir (train_tiny_model.py OUT/checkpoint)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--decode-steps", type=int, default=10)
    ap.add_argument("--sample-tokens", type=int, default=64, help="length of the greedy samples printed")
    ap.add_argument("--prompts", nargs="*", default=[
        "The state of the Union is",
        "Mr. Speaker, Mr. Vice President, Members of Congress, my fellow Americans:",
        "Fellow-Citizens of the Senate and House of Representatives:",
    ])
    args = ap.parse_args()
    torch.manual_seed(0)
    os.makedirs(args.out, exist_ok=True)

    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(args.ckpt, "tokenizer.json"))
    model = load_model(args.ckpt)
    cfg = model.config
    ok = True

    # ---- ONNX
    onnx_path = os.path.join(args.out, "model.onnx")
    in_names, out_names = export_onnx(model, onnx_path, args.opset)
    log(f"wrote {onnx_path} ({os.path.getsize(onnx_path)/1e6:.2f} MB)")
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
    for t in sess.get_inputs():
        log("  input ", t.name, t.type, t.shape)
    for t in sess.get_outputs():
        log("  output", t.name, t.type, t.shape)

    samples = []
    for prompt in args.prompts:
        ids = [1] + tok.encode(prompt).ids
        with torch.no_grad():
            g = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                               max_new_tokens=args.decode_steps + 1, min_new_tokens=args.decode_steps + 1,
                               do_sample=False, pad_token_id=0)
            ref = model(torch.tensor([ids])).logits.numpy()
        pt_new = g[0, len(ids):].tolist()
        ort_new, ort_logits = ort_greedy(sess, cfg, ids, args.decode_steps + 1)
        diff = float(np.abs(ort_logits - ref).max())
        same = pt_new == ort_new
        ok &= same and diff < 1e-3
        log(f"prompt {prompt!r}: prefill + {args.decode_steps} decode steps; torch==ort tokens: {same}; "
            f"prefill logits max|diff| {diff:.2e}")
        log("   ", repr(tok.decode(ort_new)))
        if args.sample_tokens:
            long_ort, _ = ort_greedy(sess, cfg, ids, args.sample_tokens)
            with torch.no_grad():
                g = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                   max_new_tokens=args.sample_tokens, min_new_tokens=args.sample_tokens,
                                   do_sample=False, pad_token_id=0)
            same_long = g[0, len(ids):].tolist() == long_ort
            samples.append((prompt, tok.decode(long_ort), same_long))
    # batch 2 with left padding: row 0 padded
    with torch.no_grad():
        a = [1] + tok.encode("The Congress").ids
        b = [1] + tok.encode("We must do more for the people").ids
        n = max(len(a), len(b))
        ids = np.zeros((2, n), np.int64)
        mask = np.zeros((2, n), np.int64)
        ids[0, n - len(a):], mask[0, n - len(a):] = a, 1
        ids[1, n - len(b):], mask[1, n - len(b):] = b, 1
        pos = np.clip(np.cumsum(mask, 1) - 1, 0, None)
        feeds = {"input_ids": ids, "attention_mask": mask, "position_ids": pos}
        for i in range(cfg.num_hidden_layers):
            for kv in ("key", "value"):
                feeds[f"past_key_values.{i}.{kv}"] = np.zeros((2, cfg.num_key_value_heads, 0, cfg.head_dim), np.float32)
        lo = sess.run(["logits"], feeds)[0]
        ra = model(torch.tensor([a])).logits.numpy()[0, -1]
        rb = model(torch.tensor([b])).logits.numpy()[0, -1]
        d = max(np.abs(lo[0, -1] - ra).max(), np.abs(lo[1, -1] - rb).max())
        log(f"batch-2 left-padded prefill vs unpadded torch: last-logit max|diff| {d:.2e}")
        ok &= d < 1e-3

    for prompt, text, same_long in samples:
        log(f"SAMPLE (onnxruntime greedy, {args.sample_tokens} tokens, identical to torch generate: {same_long})")
        log(f"  {prompt}{text}")

    # ---- llama2.c
    bin_path = os.path.join(args.out, "model.bin")
    shared = write_llama2c(model, bin_path)
    log(f"wrote {bin_path} ({os.path.getsize(bin_path)/1e6:.2f} MB), shared classifier: {shared}")
    m = read_llama2c(bin_path)
    test_ids = [1] + tok.encode("Fellow-Citizens of the Senate and House of Representatives: the war").ids
    with torch.no_grad():
        ref = model(torch.tensor([test_ids])).logits[0].double().numpy()
    got = llama2c_forward(m, test_ids)
    d = float(np.abs(got - ref).max())
    log(f"llama2.c numpy forward vs HF: {len(test_ids)} positions, logits max|diff| {d:.2e}")
    ok &= d < 1e-4

    # ---- tokenizer + config
    for fn in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(args.ckpt, fn), os.path.join(args.out, fn))
    theta = cfg.rope_parameters["rope_theta"]
    conf = {
        "architecture": "llama",
        "hf_config": "LlamaForCausalLM (transformers.LlamaConfig)",
        "num_hidden_layers": cfg.num_hidden_layers,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads,
        "head_dim": cfg.head_dim,
        "vocab_size": cfg.vocab_size,
        "max_position_embeddings": cfg.max_position_embeddings,
        "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": theta,
        "hidden_act": "silu (SwiGLU: down(silu(gate(x)) * up(x)))",
        "tie_word_embeddings": bool(cfg.tie_word_embeddings),
        "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
        "special_tokens": {"<pad>": 0, "<s>": 1, "</s>": 2},
        "tokenizer": "byte-level BPE (tokenizer.json); no BOS added automatically: prepend id 1",
        "rotary_layout": {
            "model.onnx": "half-split (HF Llama rotate_half: pairs (i, i+head_dim/2))",
            "model.bin": "interleaved (llama2.c: pairs (2i, 2i+1)); wq/wk rows permuted accordingly",
        },
        "onnx": {"opset": args.opset, "inputs": in_names, "outputs": out_names,
                 "kv_layout": "[batch, num_key_value_heads, seq, head_dim] float32"},
        "llama2c_header": "dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (negative: unshared classifier), seq_len",
        "dtype": "float32",
    }
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(conf, f, indent=2)
    log("wrote config.json")
    log("ALL CHECKS PASSED" if ok else "SOME CHECKS FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
