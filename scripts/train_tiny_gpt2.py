#!/usr/bin/env python3
"""Trains a tiny GPT-2 for the int8 accuracy tests (`tests/fixtures/decoders/trained-gpt2/`).

Random weights give near-flat logits, where the argmax of two slightly different computations
(f32 and int8) parts by chance; a trained model's logits are peaked like a real one's. This
trains a `GPT2LMHeadModel` (4 layers, 192 wide, 6 heads, 128 positions, the 384-token byte-level
BPE of `tests/fixtures/decoders/gpt2/tokenizer.json`) for a few CPU minutes on Python source
and docstrings that the standard library ships, until its loss has clearly fallen, then writes:

- `model.safetensors` (f16, so the folder stays small; both sides load it as f32), `config.json`,
  `generation_config.json`, `tokenizer.json`;
- `expected.json`: the training losses, and per prompt the ids, transformers' greedy 64-token
  continuation in f32 and its first-step logits; for comparison the continuation of
  `torch.ao.quantization.quantize_dynamic` (int8 weights and dynamically quantized activations)
  applied to the blocks' linear layers (GPT-2's `Conv1D`s turned into `nn.Linear` first: the
  dynamic quantizer only takes `nn.Linear`) and how many of its 64 tokens agree with f32.

Deterministic (seeded, one thread). Dev-only (needs torch, transformers, tokenizers):

    /tmp/tvenv/bin/python scripts/train_tiny_gpt2.py [--steps 500]
"""
import argparse
import inspect
import json
import os
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "decoders", "trained-gpt2")
TOKENIZER = os.path.join(ROOT, "tests", "fixtures", "decoders", "gpt2", "tokenizer.json")
NEW = 64
PROMPTS = [
    "class ",
    "    def __init__(self, ",
    "from ",
    "        raise ValueError(",
]


def passage():
    """Held-out text for teacher-forced comparisons (a module not in the training corpus)."""
    import contextlib

    return inspect.getsource(contextlib)[:1200]


def corpus():
    """Source text of some pure-Python standard-library modules (code and docstrings)."""
    import argparse as a, collections, difflib, inspect as i, json as j, textwrap, string, \
        pathlib, shutil, tempfile, dataclasses, enum, functools, typing, logging, unittest.case
    mods = [a, collections, difflib, i, j.decoder, j.encoder, textwrap, string, pathlib, shutil,
            tempfile, dataclasses, enum, functools, typing, logging, unittest.case]
    return "\n\n".join(inspect.getsource(m) for m in mods)


def to_linear(model):
    """Replaces every `Conv1D` ([in, out] weight) of the blocks by the equal `nn.Linear`."""
    from transformers.pytorch_utils import Conv1D

    for block in model.transformer.h:
        for parent in (block.attn, block.mlp):
            for name, m in list(parent.named_children()):
                if isinstance(m, Conv1D):
                    lin = torch.nn.Linear(m.weight.shape[0], m.weight.shape[1])
                    lin.weight.data = m.weight.data.t().contiguous()
                    lin.bias.data = m.bias.data.clone()
                    setattr(parent, name, lin)
    return model


def greedy(model, ids):
    with torch.inference_mode():
        out = model.generate(torch.tensor([ids]), max_new_tokens=NEW, min_new_tokens=NEW,
                             do_sample=False, pad_token_id=0)
        logits = model(torch.tensor([ids])).logits[0, -1]
    return out[0, len(ids):].tolist(), logits


def main():
    from tokenizers import Tokenizer
    from transformers import GPT2Config, GPT2LMHeadModel

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--out", default=OUT)
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)

    tok = Tokenizer.from_file(TOKENIZER)
    text = corpus()
    data = torch.tensor(tok.encode(text).ids, dtype=torch.long)
    print(f"corpus: {len(text)} characters, {len(data)} tokens")

    cfg = GPT2Config(vocab_size=tok.get_vocab_size(), n_positions=128, n_embd=192, n_layer=4,
                     n_head=6, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                     bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=args.steps,
                                                pct_start=0.1)
    batch, seq = 16, 96
    losses = []
    t0 = time.time()
    model.train()
    for step in range(args.steps):
        starts = torch.randint(0, len(data) - seq - 1, (batch,))
        x = torch.stack([data[s:s + seq] for s in starts])
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step}: loss {loss.item():.3f} ({time.time() - t0:.0f} s)")
    first = sum(losses[:10]) / 10
    last = sum(losses[-20:]) / 20
    # (Short runs are for trying the script out.)
    assert args.steps < 100 or last < first - 2.0, f"the loss did not fall enough: {first:.2f} -> {last:.2f}"

    # Saved in f16; the reference is the f16 weights loaded back as f32, as torchless loads them.
    model.eval()
    os.makedirs(args.out, exist_ok=True)
    model.half().save_pretrained(args.out, safe_serialization=True)
    tok.save(os.path.join(args.out, "tokenizer.json"))
    ref = GPT2LMHeadModel.from_pretrained(args.out, dtype=torch.float32).eval()
    # The int8 baseline: the blocks' linear layers quantized by PyTorch (the head stays f32, as
    # in torchless).
    qmodel = to_linear(GPT2LMHeadModel.from_pretrained(args.out, dtype=torch.float32).eval())
    torch.ao.quantization.quantize_dynamic(qmodel.transformer.h, {torch.nn.Linear},
                                           dtype=torch.qint8, inplace=True)

    cases = []
    for prompt in PROMPTS:
        ids = tok.encode(prompt).ids
        new, logits = greedy(ref, ids)
        qnew, qlogits = greedy(qmodel, ids)
        agree = sum(a == b for a, b in zip(new, qnew))
        rel = ((qlogits - logits).norm() / logits.norm()).item()
        print(f"{prompt!r}: {tok.decode(new)!r}; quantize_dynamic agrees on {agree}/{NEW}, "
              f"first logits rel. error {rel:.4f}")
        cases.append({
            "prompt": prompt,
            "prompt_ids": ids,
            "greedy_new_ids": new,
            "first_step_logits": [round(v, 6) for v in logits.tolist()],
            "quantize_dynamic_new_ids": qnew,
            "quantize_dynamic_agreement": agree,
            "quantize_dynamic_first_logits_rel_err": round(rel, 6),
        })
    # Teacher-forced: every position of a held-out passage, f32 argmax (and the dynamic
    # quantizer's agreement with it), so the comparison covers varied text, not only the
    # continuations greedy decoding of a small model falls into.
    pids = tok.encode(passage()).ids[:127]
    with torch.inference_mode():
        pl = ref(torch.tensor([pids])).logits[0]
        ql = qmodel(torch.tensor([pids])).logits[0]
    top = pl.argmax(-1).tolist()
    qagree = sum(a == b for a, b in zip(top, ql.argmax(-1).tolist()))
    print(f"passage: {len(pids)} positions; quantize_dynamic argmax agrees on {qagree}")
    with open(os.path.join(args.out, "expected.json"), "w") as f:
        json.dump({
            "torch": torch.__version__,
            "steps": args.steps,
            "loss_first_10": round(first, 4),
            "loss_last_20": round(last, 4),
            "new_tokens": NEW,
            "cases": cases,
            "passage": {
                "ids": pids,
                "argmax": top,
                "last_logits": [round(v, 6) for v in pl[-1].tolist()],
                "quantize_dynamic_argmax_agreement": qagree,
            },
        }, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
