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
import os
import sys

from side_by_side import criterion_medians, median_ms, print_ratio_table

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
            with torch.inference_mode():
                out[(name, f"forward {b}x128")] = median_ms(
                    lambda: model(input_ids=ids, attention_mask=mask), 20 if b == 1 else 5)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    ours = criterion_medians("encoder", args.threads, [name for name, *_ in MODELS])
    theirs = torch_times(args.threads)
    print_ratio_table(ours, theirs, args.threads)


if __name__ == "__main__":
    sys.exit(main())
