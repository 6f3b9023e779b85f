#!/usr/bin/env python3
"""Train and export a tiny LLaVA-style vision-language model on synthetic images.

Tooling only: the pipec product never needs Python.

The model is assembled from transformers' own classes, as LLaVA is: a CLIP vision tower
(CLIPVisionModel, its patch tokens without [CLS]), a two-layer MLP projector, and a Llama
decoder (LlamaForCausalLM) that reads the projected patches in place of an `<image>` token.

Data: 64x64 RGB images drawn here (shapes, colours, counts, left/right positions, rendered
digits), each with one question and a one-word answer. Training images are drawn on the fly
from seed 1; the held-out set (seed 2) is never trained on. Half the batches drop a random
subset of the visual tokens (keeping the others at their original positions), so the decoder
sees the position gaps that visual token pruning leaves.

Outputs (the split layout of transformers.js / Optimum VLM exports):
    vision_encoder.onnx   pixel_values [B,3,64,64] -> image_features [B,Nv,C] (projected),
                          cls_attention [B,Nv] (last layer, [CLS] -> patch, mean over heads)
    embed_tokens.onnx     input_ids [B,S] -> inputs_embeds [B,S,C]
    decoder_model.onnx    inputs_embeds, attention_mask, position_ids, past_key_values.* -> logits, present.*
    config.json, preprocessor_config.json, tokenizer.json, tokenizer_config.json
    heldout/*.png + heldout/questions.json   a held-out sample for pipec's bench
    MODEL_CARD.md                            held-out accuracy

    nice -n 15 python3 tools/train_tiny_vlm.py --out examples/models/shapes-vlm --minutes 30
"""
import argparse
import json
import math
import os
import struct
import time
import zlib

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

SIZE, PATCH = 64, 4
COLORS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (50, 90, 235),
          "yellow": (235, 220, 50), "white": (240, 240, 240), "purple": (170, 60, 210)}
SHAPES = ["circle", "square", "triangle"]
COUNT_WORDS = ["one", "two", "three", "four"]
# 3x5 bitmap font for the digits 0-9.
FONT = ["111101101101111", "010110010010111", "111001111100111", "111001111001111", "101101111001001",
        "111100111001111", "111100111101111", "111001001001001", "111101111101111", "111101111001111"]
QUESTIONS = {
    "color": "what color is the shape ?",
    "shape": "what shape is it ?",
    "count": "how many shapes are there ?",
    "position": "is the shape on the left or the right ?",
    "digit": "what digit is shown ?",
}
SPECIAL = ["<pad>", "<s>", "</s>", "<unk>", "<image>"]
PAD, BOS, EOS, UNK, IMAGE = range(5)


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def vocabulary():
    words = set()
    for q in QUESTIONS.values():
        words.update(q.split())
    words.update(COLORS, SHAPES, COUNT_WORDS, ["left", "right"], [str(d) for d in range(10)])
    return SPECIAL + sorted(words)


def draw_shape(img, kind, cx, cy, r, color):
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    if kind == "circle":
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    elif kind == "square":
        mask = (abs(xx - cx) <= r * 0.85) & (abs(yy - cy) <= r * 0.85)
    else:  # triangle, apex up
        top, bottom = cy - r, cy + r
        half = (yy - top) / (2 * r) * r
        mask = (yy >= top) & (yy <= bottom) & (abs(xx - cx) <= half)
    img[mask] = color


def draw_digit(img, digit, x0, y0, scale, color):
    bits = FONT[digit]
    for row in range(5):
        for col in range(3):
            if bits[row * 3 + col] == "1":
                img[y0 + row * scale:y0 + (row + 1) * scale, x0 + col * scale:x0 + (col + 1) * scale] = color


def background(rng):
    base = rng.integers(0, 40, size=3)
    noise = rng.integers(-6, 7, size=(SIZE, SIZE, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def sample(rng, kind):
    img = background(rng)
    if kind in ("color", "shape", "position"):
        shape = SHAPES[rng.integers(len(SHAPES))]
        color = list(COLORS)[rng.integers(len(COLORS))]
        r = int(rng.integers(6, 12))
        if kind == "position":
            left = bool(rng.integers(2))
            cx = int(rng.integers(r, SIZE // 2 - 4)) if left else int(rng.integers(SIZE // 2 + 4, SIZE - r))
        else:
            cx = int(rng.integers(r, SIZE - r))
        cy = int(rng.integers(r, SIZE - r))
        draw_shape(img, shape, cx, cy, r, COLORS[color])
        answer = {"color": color, "shape": shape, "position": "left" if kind == "position" and left else "right"}[kind]
    elif kind == "count":
        n = int(rng.integers(1, 5))
        cells = rng.permutation(9)[:n]  # a 3x3 grid keeps shapes apart
        for c in cells:
            r = int(rng.integers(4, 8))
            cx = int((c % 3) * 21 + 10 + rng.integers(-2, 3))
            cy = int((c // 3) * 21 + 10 + rng.integers(-2, 3))
            draw_shape(img, SHAPES[rng.integers(3)], cx, cy, r, COLORS[list(COLORS)[rng.integers(len(COLORS))]])
        answer = COUNT_WORDS[n - 1]
    else:
        d = int(rng.integers(10))
        scale = int(rng.integers(4, 8))
        x0 = int(rng.integers(0, SIZE - 3 * scale + 1))
        y0 = int(rng.integers(0, SIZE - 5 * scale + 1))
        draw_digit(img, d, x0, y0, scale, COLORS[list(COLORS)[rng.integers(len(COLORS))]])
        answer = str(d)
    return img, QUESTIONS[kind], answer


KINDS = list(QUESTIONS)


def write_png(path, img):
    h, w, _ = img.shape
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def pixels(imgs):
    import torch
    x = torch.from_numpy(np.stack(imgs)).float().permute(0, 3, 1, 2) / 255.0
    return (x - 0.5) / 0.5


class VLM:
    def __init__(self, vocab_size, args):
        import torch
        from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM
        vcfg = CLIPVisionConfig(image_size=SIZE, patch_size=PATCH, hidden_size=args.vision_dim,
                                intermediate_size=2 * args.vision_dim, num_hidden_layers=args.vision_layers,
                                num_attention_heads=4, num_channels=3, attn_implementation="eager")
        self.vision = CLIPVisionModel(vcfg)
        self.projector = torch.nn.Sequential(torch.nn.Linear(args.vision_dim, args.dim), torch.nn.GELU(),
                                             torch.nn.Linear(args.dim, args.dim))
        tcfg = LlamaConfig(vocab_size=vocab_size, hidden_size=args.dim, intermediate_size=2 * args.dim,
                           num_hidden_layers=args.layers, num_attention_heads=4, num_key_value_heads=2,
                           head_dim=args.dim // 4, max_position_embeddings=512, rms_norm_eps=1e-5,
                           rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                           tie_word_embeddings=True, bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD,
                           attn_implementation="eager")
        self.llm = LlamaForCausalLM(tcfg)
        self.modules = torch.nn.ModuleList([self.vision, self.projector, self.llm])

    def image_features(self, px):
        return self.projector(self.vision(pixel_values=px).last_hidden_state[:, 1:])


def build_batch(vlm, px, prompts, answers, keep_frac, rng):
    """inputs_embeds = [<s>] visual tokens (a subset when keep_frac < 1) question answer </s>, at original positions."""
    import torch
    feats = vlm.image_features(px)
    nv = feats.shape[1]
    emb = vlm.llm.get_input_embeddings()
    seqs, poss, labels = [], [], []
    for b in range(px.shape[0]):
        m = max(1, round(keep_frac * nv))
        keep = np.sort(rng.permutation(nv)[:m]) if m < nv else np.arange(nv)
        text = prompts[b] + ([answers[b], EOS] if answers is not None else [])
        t_emb = emb(torch.tensor([BOS] + text))
        seqs.append(torch.cat([t_emb[:1], feats[b, torch.from_numpy(keep)], t_emb[1:]]))
        poss.append(torch.cat([torch.zeros(1, dtype=torch.long), torch.from_numpy(keep + 1),
                               torch.arange(1 + nv, 1 + nv + len(text))]))
        lab = torch.full((len(seqs[-1]),), -100, dtype=torch.long)
        if answers is not None:
            lab[-2:] = torch.tensor([answers[b], EOS])  # the targets sit on their own rows; the loss shifts them
        labels.append(lab)
    L = max(len(s) for s in seqs)
    B, C = len(seqs), seqs[0].shape[1]
    x = torch.zeros(B, L, C)
    mask = torch.zeros(B, L, dtype=torch.long)
    pos = torch.zeros(B, L, dtype=torch.long)
    lab = torch.full((B, L), -100, dtype=torch.long)
    last = []
    for b, s in enumerate(seqs):
        n = len(s)
        x[b, :n], mask[b, :n], pos[b, :n], lab[b, :n] = s, 1, poss[b], labels[b]
        last.append(n - 1)
    return x, mask, pos, lab, last


def encode_words(word_ids, text):
    return [word_ids.get(w, UNK) for w in text.split()]


def evaluate(vlm, data, word_ids, keep_frac=1.0, batch=50):
    import torch
    rng = np.random.default_rng(7)
    correct = 0
    with torch.no_grad():
        for s in range(0, len(data), batch):
            chunk = data[s:s + batch]
            px = pixels([d[0] for d in chunk])
            prompts = [encode_words(word_ids, d[1]) for d in chunk]
            x, mask, pos, _, last = build_batch(vlm, px, prompts, None, keep_frac, rng)
            logits = vlm.llm(inputs_embeds=x, attention_mask=mask, position_ids=pos).logits
            for b, d in enumerate(chunk):
                correct += int(logits[b, last[b]].argmax().item() == word_ids[d[2]])
    return correct / len(data)


def train(args, vocab):
    import torch
    torch.manual_seed(1)
    torch.set_num_threads(1)
    word_ids = {w: i for i, w in enumerate(vocab)}
    vlm = VLM(len(vocab), args)
    params = sum(p.numel() for p in vlm.modules.parameters())
    log(f"parameters: {params}")
    opt = torch.optim.AdamW(vlm.modules.parameters(), lr=args.lr, weight_decay=0.01)
    rng = np.random.default_rng(1)
    held_rng = np.random.default_rng(2)
    heldout = [sample(held_rng, KINDS[i % len(KINDS)]) for i in range(args.heldout)]
    start, step = time.time(), 0
    budget = args.minutes * 60
    while time.time() - start < budget:
        frac_time = (time.time() - start) / budget
        lr = args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac_time))) if step > 50 else args.lr * (step + 1) / 51
        for g in opt.param_groups:
            g["lr"] = lr
        batch = [sample(rng, KINDS[rng.integers(len(KINDS))]) for _ in range(args.batch)]
        keep = 1.0 if rng.random() < 0.5 else float(rng.uniform(0.08, 1.0))
        x, mask, pos, lab, _ = build_batch(vlm, pixels([b[0] for b in batch]),
                                           [encode_words(word_ids, b[1]) for b in batch],
                                           [word_ids[b[2]] for b in batch], keep, rng)
        logits = vlm.llm(inputs_embeds=x, attention_mask=mask, position_ids=pos).logits
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), lab[:, 1:].reshape(-1), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vlm.modules.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 100 == 0:
            log(f"step {step} loss {loss.item():.4f} lr {lr:.2e}")
        if step % 1000 == 0:
            vlm.modules.eval()
            log(f"held-out accuracy (first 250): {evaluate(vlm, heldout[:250], word_ids):.3f}")
            vlm.modules.train()
    vlm.modules.eval()
    return vlm, word_ids, heldout, step, params, time.time() - start


def export(vlm, out, vocab):
    import torch

    class Vision(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.vision, self.projector = vlm.vision, vlm.projector

        def forward(self, pixel_values):
            o = self.vision(pixel_values=pixel_values, output_attentions=True)
            cls = o.attentions[-1][:, :, 0, 1:].mean(dim=1)
            return self.projector(o.last_hidden_state[:, 1:]), cls

    class Embed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = vlm.llm.get_input_embeddings()

        def forward(self, input_ids):
            return self.embed(input_ids)

    class Decoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = vlm.llm
            self.n_layers = vlm.llm.config.num_hidden_layers

        def forward(self, inputs_embeds, attention_mask, position_ids, *past):
            from transformers import DynamicCache
            cache = DynamicCache(config=self.model.config)
            for i in range(self.n_layers):
                layer = cache.layers[i]
                k, v = past[2 * i], past[2 * i + 1]
                layer.dtype, layer.device = k.dtype, k.device
                layer.keys, layer.values = k, v
                layer.is_initialized = True
            o = self.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids,
                           past_key_values=cache, use_cache=True, return_dict=True)
            presents = []
            for layer in o.past_key_values.layers:
                presents.extend([layer.keys, layer.values])
            return (o.logits, *presents)

    cfg = vlm.llm.config
    with torch.no_grad():
        px = torch.randn(2, 3, SIZE, SIZE)
        torch.onnx.export(Vision().eval(), (px,), f"{out}/vision_encoder.onnx", input_names=["pixel_values"],
                          output_names=["image_features", "cls_attention"],
                          dynamic_axes={"pixel_values": {0: "batch_size"}, "image_features": {0: "batch_size"}, "cls_attention": {0: "batch_size"}},
                          opset_version=17, do_constant_folding=True, dynamo=False)
        ids = torch.randint(5, len(vocab), (2, 4))
        torch.onnx.export(Embed().eval(), (ids,), f"{out}/embed_tokens.onnx", input_names=["input_ids"], output_names=["inputs_embeds"],
                          dynamic_axes={"input_ids": {0: "batch_size", 1: "sequence_length"}, "inputs_embeds": {0: "batch_size", 1: "sequence_length"}},
                          opset_version=17, do_constant_folding=True, dynamo=False)
        L, Hkv, D = cfg.num_hidden_layers, cfg.num_key_value_heads, cfg.head_dim
        B, P, S = 2, 3, 4
        emb = torch.randn(B, S, cfg.hidden_size)
        mask = torch.ones(B, P + S, dtype=torch.int64)
        pos = torch.arange(P, P + S).unsqueeze(0).expand(B, S).contiguous()
        past = [torch.randn(B, Hkv, P, D) for _ in range(2 * L)]
        names_in = ["inputs_embeds", "attention_mask", "position_ids"] + [f"past_key_values.{i}.{kv}" for i in range(L) for kv in ("key", "value")]
        names_out = ["logits"] + [f"present.{i}.{kv}" for i in range(L) for kv in ("key", "value")]
        dyn = {"inputs_embeds": {0: "batch_size", 1: "sequence_length"}, "attention_mask": {0: "batch_size", 1: "total_sequence_length"},
               "position_ids": {0: "batch_size", 1: "sequence_length"}, "logits": {0: "batch_size", 1: "sequence_length"}}
        for n in names_in[3:]:
            dyn[n] = {0: "batch_size", 2: "past_sequence_length"}
        for n in names_out[1:]:
            dyn[n] = {0: "batch_size", 2: "total_sequence_length"}
        torch.onnx.export(Decoder().eval(), (emb, mask, pos, *past), f"{out}/decoder_model.onnx", input_names=names_in, output_names=names_out,
                          dynamic_axes=dyn, opset_version=17, do_constant_folding=True, dynamo=False)
    import onnx
    for f in ("vision_encoder", "embed_tokens", "decoder_model"):
        m = onnx.load(f"{out}/{f}.onnx")
        onnx.checker.check_model(m)
        m.producer_name = "pipec tools/train_tiny_vlm.py"
        onnx.save(m, f"{out}/{f}.onnx")


def write_configs(out, vocab, vlm, args):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, decoders
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", BOS)])
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    tok.add_special_tokens(SPECIAL)
    tok.save(f"{out}/tokenizer.json")
    json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>",
               "unk_token": "<unk>", "add_bos_token": True, "model_max_length": 512}, open(f"{out}/tokenizer_config.json", "w"), indent=2)
    c = vlm.llm.config
    nv = (SIZE // PATCH) ** 2
    json.dump({"model_type": "llava", "architectures": ["LlavaForConditionalGeneration"], "image_token_index": IMAGE,
               "vision_feature_select_strategy": "default", "image_seq_length": nv,
               "vocab_size": c.vocab_size, "hidden_size": c.hidden_size, "num_hidden_layers": c.num_hidden_layers,
               "num_attention_heads": c.num_attention_heads, "num_key_value_heads": c.num_key_value_heads, "head_dim": c.head_dim,
               "max_position_embeddings": c.max_position_embeddings, "bos_token_id": BOS, "eos_token_id": EOS, "pad_token_id": PAD,
               "vision_config": {"model_type": "clip_vision_model", "image_size": SIZE, "patch_size": PATCH, "hidden_size": args.vision_dim,
                                 "num_hidden_layers": args.vision_layers, "num_attention_heads": 4}},
              open(f"{out}/config.json", "w"), indent=2)
    json.dump({"image_processor_type": "CLIPImageProcessor", "do_resize": True, "size": {"height": SIZE, "width": SIZE}, "resample": 2,
               "do_center_crop": False, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
               "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "do_convert_rgb": True},
              open(f"{out}/preprocessor_config.json", "w"), indent=2)


def check_onnx(out, vlm, word_ids, heldout):
    """The exported files, run the way pipec runs them, agree with PyTorch on one held-out sample."""
    import onnxruntime as ort
    import torch
    img, q, a = heldout[0]
    px = pixels([img]).numpy()
    vis = ort.InferenceSession(f"{out}/vision_encoder.onnx").run(None, {"pixel_values": px})[0]
    ids = np.array([[BOS, IMAGE] + encode_words(word_ids, q)], dtype=np.int64)
    emb = ort.InferenceSession(f"{out}/embed_tokens.onnx").run(None, {"input_ids": ids})[0]
    x = np.concatenate([emb[:, :1], vis, emb[:, 2:]], axis=1)
    dec = ort.InferenceSession(f"{out}/decoder_model.onnx")
    c = vlm.llm.config
    feeds = {"inputs_embeds": x, "attention_mask": np.ones((1, x.shape[1]), np.int64), "position_ids": np.arange(x.shape[1])[None].astype(np.int64)}
    for i in range(c.num_hidden_layers):
        for kv in ("key", "value"):
            feeds[f"past_key_values.{i}.{kv}"] = np.zeros((1, c.num_key_value_heads, 0, c.head_dim), np.float32)
    logits = dec.run(["logits"], feeds)[0]
    with torch.no_grad():
        ref = vlm.llm(inputs_embeds=torch.from_numpy(x)).logits.numpy()
    err = float(np.abs(logits - ref).max())
    log(f"onnx vs torch max |diff| {err:.2e}; answer {list(word_ids)[int(logits[0, -1].argmax())]} (expected {a})")
    assert err < 1e-3


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--vision-dim", type=int, default=48)
    ap.add_argument("--vision-layers", type=int, default=2)
    ap.add_argument("--heldout", type=int, default=1000)
    ap.add_argument("--heldout-images", type=int, default=200, help="held-out samples written as PNG for the bench")
    args = ap.parse_args()
    os.makedirs(f"{args.out}/heldout", exist_ok=True)
    vocab = vocabulary()
    vlm, word_ids, heldout, steps, params, secs = train(args, vocab)
    acc = {k: evaluate(vlm, [d for d in heldout if d[1] == QUESTIONS[k]], word_ids) for k in KINDS}
    overall = evaluate(vlm, heldout, word_ids)
    log(f"held-out accuracy {overall:.3f} {acc}")
    write_configs(args.out, vocab, vlm, args)
    export(vlm, args.out, vocab)
    check_onnx(args.out, vlm, word_ids, heldout)
    questions = []
    for i, (img, q, a) in enumerate(heldout[:args.heldout_images]):
        write_png(f"{args.out}/heldout/{i:03d}.png", img)
        questions.append({"image": f"{i:03d}.png", "question": q, "answer": a})
    json.dump(questions, open(f"{args.out}/heldout/questions.json", "w"), indent=1)
    json.dump({"steps": steps, "seconds": round(secs), "parameters": params, "batch": args.batch, "heldout": len(heldout),
               "accuracy": round(overall, 4), "accuracy_by_kind": {k: round(v, 4) for k, v in acc.items()}},
              open(f"{args.out}/train_result.json", "w"), indent=2)


if __name__ == "__main__":
    main()
