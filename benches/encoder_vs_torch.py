#!/usr/bin/env python3
"""BERT encoder speed on the CPU, torchless next to PyTorch eager, in one invocation.

Runs the criterion benchmark `benches/encoder` (all-MiniLM-L6-v2-sized and bert-base-sized
encoders with random weights: forward at batch 1 x 128 and 32 x 128 tokens, and MiniLM load
time = mmap + prepare) and times `transformers.BertModel` of the same sizes in PyTorch eager
(`torch.inference_mode`, random weights, same inputs shape), both limited to the same number of
threads. Prints a markdown table of medians and ratios for benches/RESULTS.md.

The mixed-length row (`embed 256 mixed b32`): 256 texts of 5-400 tokens (truncated at 256),
embedded at batch size 32 by `SentenceEncoder::embed` (criterion) and by
`SentenceTransformer.encode(texts, batch_size=32)` on the same sentence-transformers folder
(MiniLM-L6 sizes, random weights, the tokenizer of tests/fixtures/bert), which the criterion bench
writes with the texts and its own embeddings; the script also prints the largest difference
between the two sets of embeddings and the real vs padded token counts.

Dev-only (needs torch and transformers):
    python benches/encoder_vs_torch.py [--threads N]
"""
import argparse
import json
import os
import sys
import tempfile

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


def embed_times(threads, folder):
    """`SentenceTransformer.encode` of the criterion bench's texts at batch size 32."""
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    model = SentenceTransformer(folder, device="cpu")
    with open(os.path.join(folder, "texts.json")) as f:
        texts = json.load(f)
    with open(os.path.join(folder, "ours.json")) as f:
        ours = np.array(json.load(f), dtype=np.float32)
    theirs = model.encode(texts, batch_size=32, convert_to_numpy=True)
    lens = [len(model.preprocess([t])["input_ids"][0]) for t in texts]
    # sentence-transformers' own batches: sorted by text length, padded to each batch's longest.
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    padded = sum(len(b) * max(lens[i] for i in b)
                 for b in (order[k:k + 32] for k in range(0, len(order), 32)))
    print(f"embed 256 mixed b32: {sum(lens)} real tokens ({min(lens)}-{max(lens)} per text), "
          f"{padded} in sentence-transformers' padded batches; "
          f"max |ours - sentence-transformers| = {np.abs(ours - theirs).max():.2e}\n")
    ms = median_ms(lambda: model.encode(texts, batch_size=32), 5, warmup=1)
    return {("minilm-l6", "embed 256 mixed b32"): ms}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="torchless-embed-") as folder:
        os.environ["TORCHLESS_BENCH_EMBED_DIR"] = folder
        ours = criterion_medians("encoder", args.threads, [name for name, *_ in MODELS])
        theirs = torch_times(args.threads)
        theirs.update(embed_times(args.threads, folder))
    print_ratio_table(ours, theirs, args.threads)


if __name__ == "__main__":
    sys.exit(main())
