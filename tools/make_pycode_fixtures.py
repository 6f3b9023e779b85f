#!/usr/bin/env python3
"""Fixtures for examples/models/pycode-tiny (tooling only: pipec never needs Python).

After tools/train_tiny_model.py (Python standard library corpus) and
tools/export_tiny_model.py have written the model, this writes:

  test/fixtures/heldout/*.py    whole-line prefixes (at least --prefix-tokens tokens under the
                                pycode-tiny tokenizer) of held-out files: never seen by the
                                tokenizer or the model in training
  test/fixtures/heldout/README.md
                                which files, and their token counts under both tokenizers
  MODEL/expected.json           greedy continuations from PyTorch generate, checked equal to an
                                onnxruntime KV-cache loop over MODEL/model.onnx, including one
                                whose prompt and continuation fill all --seq-len trained positions

and prints the token counts of the prose fixtures under both tokenizers.

    python3 tools/make_pycode_fixtures.py --ckpt /tmp/pycode-run/checkpoint \\
        --model examples/models/pycode-tiny
"""
import argparse
import json
import os
import sys
import sysconfig

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_tiny_model import load_model, ort_greedy  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HELDOUT_DIR = os.path.join(ROOT, "test/fixtures/heldout")
PROSE_DIR = os.path.join(ROOT, "test/fixtures/prose")
SOTU_TOKENIZER = os.path.join(ROOT, "examples/models/sotu-tiny/tokenizer.json")
BOS = 1
CLI_PROMPT = "def get_name(self):"


def line_prefix(tok, text, min_tokens):
    """The shortest whole-line prefix of text with at least min_tokens tokens (or all of it)."""
    lines = text.splitlines(keepends=True)
    lo, hi = 1, len(lines)
    while lo < hi:
        mid = (lo + hi) // 2
        if len(tok.encode("".join(lines[:mid])).ids) >= min_tokens:
            hi = mid
        else:
            lo = mid + 1
    return "".join(lines[:lo])


def greedy_case(model, sess, name, ids, n_new):
    with torch.no_grad():
        g = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                           max_new_tokens=n_new, min_new_tokens=n_new, do_sample=False, pad_token_id=0,
                           output_scores=True, return_dict_in_generate=True)
    torch_new = g.sequences[0, len(ids):].tolist()
    gaps = [float((s[0].topk(2).values[0] - s[0].topk(2).values[1]).item()) for s in g.scores]
    ort_new, _ = ort_greedy(sess, model.config, ids, n_new)
    if ort_new != torch_new:
        sys.exit(f"{name}: onnxruntime greedy {ort_new} != torch generate {torch_new}")
    return dict(name=name, prompt_ids=ids, greedy=torch_new, positions_used=len(ids) + n_new - 1,
                min_top2_gap=round(min(gaps), 4))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True, help="train_tiny_model.py OUT/checkpoint (heldout_files.txt, weights)")
    ap.add_argument("--model", required=True, help="exported model directory (model.onnx, tokenizer.json)")
    ap.add_argument("--stdlib", default=sysconfig.get_paths()["stdlib"], help="the corpus root")
    ap.add_argument("--files", type=int, default=4, help="held-out files to write")
    ap.add_argument("--prefix-tokens", type=int, default=4096)
    ap.add_argument("--seq-len", type=int, default=1024, help="trained positions (the long case fills them)")
    args = ap.parse_args()
    torch.set_num_threads(2)

    from tokenizers import Tokenizer
    import onnxruntime as ort
    tok = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    sotu = Tokenizer.from_file(SOTU_TOKENIZER)
    heldout = open(os.path.join(args.ckpt, "heldout_files.txt")).read().split()

    # ---- held-out source files
    os.makedirs(HELDOUT_DIR, exist_ok=True)
    chosen = []
    for rel in heldout:
        text = open(os.path.join(args.stdlib, rel), encoding="utf-8").read().strip() + "\n"
        if len(tok.encode(text).ids) >= args.prefix_tokens:
            chosen.append((rel, line_prefix(tok, text, args.prefix_tokens)))
    if len(chosen) < args.files:
        sys.exit(f"only {len(chosen)} held-out files have {args.prefix_tokens} tokens")
    rows = []
    for rel, text in chosen[:args.files]:
        name = os.path.basename(rel)
        with open(os.path.join(HELDOUT_DIR, name), "w", encoding="utf-8") as f:
            f.write(text)
        rows.append((name, rel, text.count("\n"), len(text), len(tok.encode(text).ids), len(sotu.encode(text).ids)))
        print(f"heldout/{name}: {rows[-1][2:]}")

    prose = []
    for name in sorted(os.listdir(PROSE_DIR)):
        if name.endswith(".txt"):
            text = open(os.path.join(PROSE_DIR, name), encoding="utf-8").read()
            prose.append((name, len(text), len(tok.encode(text).ids), len(sotu.encode(text).ids)))
            print(f"prose/{name}: {len(text)} chars, pycode-tiny {prose[-1][2]} tokens, sotu-tiny {prose[-1][3]} tokens")

    # ---- expected greedy tokens
    model = load_model(args.ckpt)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(os.path.join(args.model, "model.onnx"), so, providers=["CPUExecutionProvider"])
    first = rows[0][0]
    first_ids = tok.encode(open(os.path.join(HELDOUT_DIR, first), encoding="utf-8").read()).ids
    second = rows[1][0]
    second_ids = tok.encode(open(os.path.join(HELDOUT_DIR, second), encoding="utf-8").read()).ids
    long_new = 16
    cases = [
        # What `pipec generate --prompt` runs: the text alone, no BOS. (A prompt ending in a space,
        # like "def ", is out of distribution: the byte-level pre-tokenizer glues a space to the
        # word after it, so a lone trailing space token never preceded a name in training.)
        greedy_case(model, sess, CLI_PROMPT, tok.encode(CLI_PROMPT).ids, 24),
        greedy_case(model, sess, f"BOS + first 64 tokens of heldout/{second}", [BOS] + second_ids[:64], 24),
        greedy_case(model, sess, f"BOS + first {args.seq_len - long_new} tokens of heldout/{first}",
                    [BOS] + first_ids[:args.seq_len - long_new], long_new),
    ]
    for c in cases:
        print(f"{c['name']!r}: {len(c['prompt_ids'])} prompt ids, greedy {tok.decode(c['greedy'])!r}, "
              f"{c['positions_used']} positions used, min top-2 gap {c['min_top2_gap']}")
    import onnxruntime, transformers
    expected = dict(
        model="model.onnx",
        made_by="tools/make_pycode_fixtures.py",
        versions=dict(torch=torch.__version__, transformers=transformers.__version__,
                      onnxruntime=onnxruntime.__version__),
        note="greedy = PyTorch generate(do_sample=False), equal to an onnxruntime KV-cache loop over model.onnx; "
             "prompt_ids include BOS (1) where the name says so; positions_used = prompt + generated - 1 "
             "(the last generated token is not fed back)",
        cases=cases,
    )
    with open(os.path.join(args.model, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")

    print("\n| file | held-out corpus file (in the standard library) | lines | characters | pycode-tiny tokens | sotu-tiny tokens |")
    print("|---|---|---|---|---|---|")
    for name, rel, lines, chars, a, b in rows:
        print(f"| `{name}` | {rel} | {lines} | {chars:,} | {a:,} | {b:,} |")
    print("\n| file | characters | pycode-tiny tokens | sotu-tiny tokens |")
    print("|---|---|---|---|")
    for name, chars, a, b in prose:
        print(f"| `{name}` | {chars:,} | {a:,} | {b:,} |")


if __name__ == "__main__":
    main()
