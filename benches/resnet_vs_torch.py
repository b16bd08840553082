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
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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
            runs = 20 if b == 1 else 5
            with torch.inference_mode():
                for _ in range(3):
                    model(x)
                ts = []
                for _ in range(runs):
                    t = time.perf_counter()
                    model(x)
                    ts.append(time.perf_counter() - t)
            out[(name, f"forward {b}x3x224x224")] = statistics.median(ts) * 1e3
    return out


def torchless_times(threads):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    subprocess.run(
        ["cargo", "bench", "-p", "torchless-benches", "--bench", "resnet", "--", "--noplot"],
        cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL,
    )
    out = {}
    crit = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "criterion")
    for name in MODELS:
        group = os.path.join(crit, f"resnet {name}")
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
        print(f"| {key[0]} | {key[1]} | {ours[key]:.1f} | {t:.1f} | {ours[key] / t:.2f} |" if t else
              f"| {key[0]} | {key[1]} | {ours[key]:.1f} | - | - |")


if __name__ == "__main__":
    sys.exit(main())
