#!/usr/bin/env python3
"""PyTorch eager baseline for the GPU check (dev-only; runs on the GPU machine's own torch).

Reads the benchmark cases listed by `gpu_kernels --list` (one JSON spec per case, written by
benches/cases/*.rs, which document each field) and times the same computation in PyTorch eager on
the same card: CUDA events around each call, L2 flushed in between, median of 30 after 5 warm-ups.
Also measures the device-to-device copy bandwidth of a 1 GiB tensor. Prints
{"copy_gbps": ..., "cases": [{"case": spec, "us": median}, ...]} on stdout.

Without CUDA (a dry run on a CPU machine) it prints no timings.
"""
import json
import statistics
import sys

import torch
import torch.nn.functional as F

WARMUP, ITERS = 5, 30
DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def seeded(shape, seed, lo, hi, dtype):
    g = torch.Generator(device="cuda").manual_seed(seed)
    return (torch.rand(shape, generator=g, device="cuda") * (hi - lo) + lo).to(dtype)


def build(c):
    """Returns a zero-argument callable running the case's computation in eager PyTorch."""
    op, dt = c["op"], DTYPES[c["dtype"]]
    if op in ("add_layernorm", "add_rmsnorm"):
        shape = c["shape"]
        h = shape[-1]
        x, r = seeded(shape, 1, -1, 1, dt), seeded(shape, 2, -1, 1, dt)
        w, b = seeded([h], 3, 0.5, 1.5, dt), seeded([h], 4, -0.5, 0.5, dt)
        eps = c["eps"]
        if op == "add_layernorm":
            return lambda: F.layer_norm(x + r, (h,), w, b, eps)
        return lambda: F.rms_norm(x + r, (h,), w, eps)
    raise KeyError(op)


def median_us(f, flush):
    for _ in range(WARMUP):
        f()
    times = []
    for _ in range(ITERS):
        flush.add_(1.0)
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        f()
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e) * 1000.0)
    return statistics.median(times)


def main():
    cases = json.load(open(sys.argv[1]))
    if not torch.cuda.is_available():
        print("torch sees no CUDA device: no PyTorch timings (dry run)", file=sys.stderr)
        json.dump({"copy_gbps": None, "cases": []}, sys.stdout)
        return
    flush = torch.zeros(32 << 20, device="cuda")
    big = torch.zeros(256 << 20, device="cuda")
    copy_us = median_us(lambda: big.clone(), flush)
    out = {"copy_gbps": 2 * (1 << 30) / (copy_us * 1e-6) / 1e9, "cases": []}
    del big
    for c in cases:
        try:
            f = build(c)
        except KeyError:
            print(f"no PyTorch baseline for op {c.get('op')}", file=sys.stderr)
            continue
        out["cases"].append({"case": c, "us": median_us(f, flush)})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
