#!/usr/bin/env python3
"""Converter throughput and memory, side by side with the Python path, in one run.

Generates a checkpoint of about --gb gigabytes (float32 and bfloat16 tensors of transformer-like
shapes) in the zip format and in the legacy format, then converts each with

  * torchless:  target/release/torchless convert IN OUT
  * Python:     torch.load(IN, weights_only=True) + safetensors.torch.save_file(sd, OUT)
  * cp:         a plain copy of the input file (no conversion, no fsync), to show the floor

torchless fsyncs its output before the rename (atomic, durable writes); the Python path and cp
leave their data in the page cache.

each in its own process, measuring wall time and the peak anonymous resident memory (RssAnon,
sampled from /proc every 5 ms: heap and other private pages, not the page cache of mapped
files). Every run is repeated --repeat times after one warm-up run (page cache warm for
everyone); the median is reported. Prints a markdown table for benches/RESULTS.md.

Dev-only: needs Python with torch and safetensors (see scripts/), and a release build:
    cargo build --release -p torchless
    python benches/convert_throughput.py --gb 2
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY_CONVERT = """
import sys, torch
from safetensors.torch import save_file
sd = torch.load(sys.argv[1], weights_only=True)
save_file({k: v.contiguous() for k, v in sd.items()}, sys.argv[2], metadata={"format": "pt"})
"""


def make_checkpoint(path_zip, path_legacy, gb):
    import torch

    torch.manual_seed(0)
    sd = {}
    total = 0
    i = 0
    target = int(gb * 1e9)
    while total < target:
        # A transformer block's worth: two 4096x1024 f32 projections and a bf16 4096x4096.
        for name, shape, dtype in (
            ("attn.weight", (4096, 1024), torch.float32),
            ("mlp.weight", (1024, 4096), torch.float32),
            ("big.weight", (4096, 4096), torch.bfloat16),
            ("norm.weight", (1024,), torch.float32),
        ):
            t = torch.empty(shape, dtype=dtype).uniform_(-1, 1)
            sd[f"layers.{i}.{name}"] = t
            total += t.numel() * t.element_size()
        i += 1
    torch.save(sd, path_zip)
    torch.save(sd, path_legacy, _use_new_zipfile_serialization=False)
    return total


def measure(cmd):
    """Runs cmd; returns (seconds, peak RssAnon bytes)."""
    start = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    done = threading.Event()

    def sample():
        nonlocal peak
        status = f"/proc/{p.pid}/status"
        while not done.is_set():
            try:
                with open(status) as f:
                    for line in f:
                        if line.startswith("RssAnon:"):
                            peak = max(peak, int(line.split()[1]) * 1024)
                            break
            except OSError:
                pass
            time.sleep(0.005)

    t = threading.Thread(target=sample)
    t.start()
    _, err = p.communicate()
    elapsed = time.perf_counter() - start
    done.set()
    t.join()
    if p.returncode != 0:
        sys.exit(f"{cmd[0]} failed: {err.decode()}")
    return elapsed, peak


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gb", type=float, default=2.0, help="checkpoint size in GB")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=None, help="scratch folder (default: a temp dir)")
    ap.add_argument("--torchless", default=os.path.join(ROOT, "target/release/torchless"))
    args = ap.parse_args()
    if not os.path.exists(args.torchless):
        sys.exit("build first: cargo build --release -p torchless")
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        zp, lp = os.path.join(d, "zip.pt"), os.path.join(d, "legacy.pt")
        size = make_checkpoint(zp, lp, args.gb)
        out = os.path.join(d, "out.safetensors")
        rows = []
        for label, src in (("zip", zp), ("legacy", lp)):
            tools = (
                ("torchless", [args.torchless, "convert", src, out]),
                ("torch.load + save_file", [sys.executable, "-c", PY_CONVERT, src, out]),
                ("cp (plain file copy, for scale)", ["cp", src, out]),
            )
            res = {}
            for name, cmd in tools:
                measure(cmd)  # warm-up: page cache and imports
                runs = [measure(cmd) for _ in range(args.repeat)]
                res[name] = (statistics.median(r[0] for r in runs), max(r[1] for r in runs))
                os.remove(out)
            rows.append((label, res))
        print(f"checkpoint: {size / 1e9:.2f} GB of tensor data, {os.cpu_count()} CPUs, "
              f"median of {args.repeat} runs after a warm-up\n")
        print("| format | tool | seconds | GB/s | peak RssAnon | RssAnon / checkpoint | speed-up |")
        print("|---|---|---|---|---|---|---|")
        for label, res in rows:
            base = res["torch.load + save_file"][0]
            for name, (secs, peak) in res.items():
                print(f"| {label} | {name} | {secs:.2f} | {size / 1e9 / secs:.2f} | "
                      f"{peak / 1e6:.0f} MB | {100 * peak / size:.1f}% | {base / secs:.2f}x |")


if __name__ == "__main__":
    main()
