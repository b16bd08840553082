#!/usr/bin/env python3
"""ResNet speed on the CPU, torchless next to PyTorch eager, in one invocation.

Runs the criterion benchmark `benches/resnet` (torchvision resnet18 and resnet50, 1000 classes,
random weights, BatchNorm folded at load: forward at batch 1 and 8 on 3x224x224) and times
`torchvision.models.resnet18/50` in PyTorch eager (eval, `torch.inference_mode`, random
weights, same input shapes), both limited to the same number of threads
(`RAYON_NUM_THREADS` / `torch.set_num_threads`). Prints a markdown table of medians and ratios
for benches/RESULTS.md.

Dev-only (needs torch and torchvision):
    python benches/resnet_vs_torch.py [--threads N]
"""
import argparse
import os
import sys

from side_by_side import criterion_medians, median_ms, print_ratio_table

MODELS = ["resnet18", "resnet50"]
BATCHES = [1, 8]


def torch_times(threads):
    import torch
    import torchvision

    torch.set_num_threads(threads)
    out = {}
    for name in MODELS:
        model = getattr(torchvision.models, name)(weights=None).eval()
        for b in BATCHES:
            x = torch.rand(b, 3, 224, 224) * 2 - 1
            with torch.inference_mode():
                out[(name, f"forward {b}x3x224x224")] = median_ms(
                    lambda: model(x), 20 if b == 1 else 5)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    ours = criterion_medians("resnet", args.threads, MODELS)
    theirs = torch_times(args.threads)
    print_ratio_table(ours, theirs, args.threads)


if __name__ == "__main__":
    sys.exit(main())
