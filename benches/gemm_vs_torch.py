"""The packed f32 GEMM against PyTorch's `torch.matmul` (MKL/oneDNN) at the models' shapes, and
the roofline: the micro-kernel's peak FLOP/s and streaming bandwidth (`benches/gemm`).

    python benches/gemm_vs_torch.py --threads 2

Runs `cargo bench --bench gemm` with `RAYON_NUM_THREADS=threads`, times `torch.matmul(x, w)` (w a
contiguous [K, N], as PyTorch's `nn.Linear` multiplies by the transposed weight view; both orders
are timed and the faster kept) under `torch.inference_mode()` with `torch.set_num_threads(threads)`,
and prints GFLOP/s and ratios as markdown.
"""
import argparse
import os
import platform
import subprocess

import torch

from side_by_side import criterion_medians, median_ms

SHAPES = [
    (1, 768, 3072, "gpt2 decode c_fc"),
    (1, 2048, 11264, "llama-1b decode gate_up"),
    (32, 768, 2304, "gpt2 prefill 32 c_attn"),
    (32, 768, 3072, "gpt2 prefill 32 c_fc"),
    (32, 3072, 768, "gpt2 prefill 32 c_proj"),
    (32, 2048, 11264, "llama-1b prefill 32 gate_up"),
    (128, 384, 1152, "minilm 1x128 qkv"),
    (128, 1536, 384, "minilm 1x128 output"),
    (128, 768, 2304, "bert-base 1x128 qkv"),
    (128, 768, 3072, "bert-base 1x128 intermediate"),
    (128, 3072, 768, "bert-base 1x128 output"),
    (512, 2048, 2048, "llama-1b prefill 512 o_proj"),
    (4096, 384, 1536, "minilm 32x128 intermediate"),
    (4096, 1536, 384, "minilm 32x128 output"),
    (4096, 768, 3072, "bert-base 32x128 intermediate"),
    (2048, 2048, 2048, "large square"),
]


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or platform.machine()


def torch_ms(m, k, n, runs):
    x = torch.rand(m, k) * 2 - 1
    w = torch.rand(k, n) * 2 - 1
    wt = w.t().contiguous()
    with torch.inference_mode():
        a = median_ms(lambda: torch.matmul(x, w), runs)
        b = median_ms(lambda: torch.nn.functional.linear(x, wt), runs)
    return min(a, b)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    groups = [f"{m}x{k}x{n}" for m, k, n, _ in SHAPES] + ["roof"]
    ours = criterion_medians("gemm", args.threads, groups)
    theirs = {f"{m}x{k}x{n}": torch_ms(m, k, n, args.runs if m * k * n < 1 << 30 else 5)
              for m, k, n, _ in SHAPES}
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs; threads: {args.threads}; torch {torch.__version__}\n")
    roof = {fn: ms for (g, fn), ms in ours.items() if g == "roof"}
    print("| roof | measured |")
    print("|---|---|")
    flops_one = 2 * 256 * 12 * 32 * 4096
    for fam, (mr, nr) in [("avx512", (12, 32)), ("avx2", (6, 16))]:
        for what, mult in [("1 thread", 1), ("all threads", args.threads)]:
            ms = roof.get(f"microkernel {fam} {what}")
            if ms:
                fl = 2 * 256 * mr * nr * 4096 * mult
                print(f"| f32 peak, {fam} micro-kernel, {what} | {fl / ms / 1e6:.1f} GFLOP/s |")
    del flops_one
    for what in ["1 thread", "all threads"]:
        ms = roof.get(f"stream {what}")
        if ms:
            print(f"| streaming read, {what} | {4 * (1 << 28) / ms / 1e6:.1f} GB/s |")
    print()
    print("| shape (MxKxN) | from | torchless GFLOP/s | avx2 GFLOP/s | candle GFLOP/s | torch GFLOP/s "
          "| torchless / torch time | candle / torch time |")
    print("|---|---|---|---|---|---|---|---|")
    for m, k, n, what in SHAPES:
        g = f"{m}x{k}x{n}"
        fl = 2 * m * k * n
        p = ours.get((g, "packed"))
        a2 = ours.get((g, "packed avx2"))
        c = ours.get((g, "candle"))
        t = theirs[g]
        gf = lambda ms: f"{fl / ms / 1e6:.1f}" if ms else "-"
        print(f"| {g} | {what} | {gf(p)} | {gf(a2)} | {gf(c)} | {gf(t)} | "
              f"{p / t:.2f} | {c / t:.2f} |")


if __name__ == "__main__":
    main()
