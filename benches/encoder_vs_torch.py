#!/usr/bin/env python3
"""BERT encoder speed on the CPU, torchless next to PyTorch eager, in one invocation.

Runs the criterion benchmark `benches/encoder` (all-MiniLM-L6-v2-sized and bert-base-sized
encoders with random weights: forward at batch 1 x 128 and 32 x 128 tokens, and MiniLM load
time = mmap + prepare) and times `transformers.BertModel` of the same sizes in PyTorch eager
(`torch.inference_mode`, random weights, same inputs shape), both limited to the same number of
threads. Prints a markdown table of medians and ratios for benches/RESULTS.md.

Dev-only (needs torch and transformers):
    python benches/encoder_vs_torch.py [--threads N]
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = [("minilm-l6", 384, 6, 12, 1536), ("bert-base", 768, 12, 12, 3072)]
BATCHES = [1, 32]


def torch_times(threads):
    import torch
    from transformers import BertConfig, BertModel

    torch.set_num_threads(threads)
    out = {}
    for name, h, layers, heads, inter in MODELS:
        cfg = BertConfig(vocab_size=30522, hidden_size=h, num_hidden_layers=layers,
                         num_attention_heads=heads, intermediate_size=inter,
                         max_position_embeddings=512)
        model = BertModel(cfg, add_pooling_layer=False).eval()
        for b in BATCHES:
            ids = (torch.arange(b * 128).reshape(b, 128) * 7919) % 30522
            mask = torch.ones_like(ids)
            runs = 20 if b == 1 else 5
            with torch.inference_mode():
                for _ in range(3):
                    model(input_ids=ids, attention_mask=mask)
                ts = []
                for _ in range(runs):
                    t = time.perf_counter()
                    model(input_ids=ids, attention_mask=mask)
                    ts.append(time.perf_counter() - t)
            out[(name, f"forward {b}x128")] = statistics.median(ts) * 1e3
    return out


def torchless_times(threads):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    subprocess.run(
        ["cargo", "bench", "-p", "torchless-benches", "--bench", "encoder", "--", "--noplot"],
        cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL,
    )
    out = {}
    crit = os.path.join(ROOT, "target", "criterion")
    for name, *_ in MODELS:
        group = os.path.join(crit, f"encoder {name}")
        for fn in sorted(os.listdir(group)):
            est = os.path.join(group, fn, "new", "estimates.json")
            if os.path.exists(est):
                ns = json.load(open(est))["median"]["point_estimate"]
                out[(name, fn.replace("_", " "))] = ns / 1e6
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    ours = torchless_times(args.threads)
    theirs = torch_times(args.threads)
    import torch

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"threads: {args.threads}; torch {torch.__version__}\n")
    print("| model | what | torchless ms | PyTorch eager ms | torchless / PyTorch |")
    print("|---|---|---|---|---|")
    for key in sorted(ours):
        t = theirs.get(key)
        ratio = f"{ours[key] / t:.2f}" if t else "-"
        print(f"| {key[0]} | {key[1]} | {ours[key]:.1f} | {t:.1f} | {ratio} |" if t else
              f"| {key[0]} | {key[1]} | {ours[key]:.1f} | - | - |")


if __name__ == "__main__":
    sys.exit(main())
