"""Shared pieces of the `*_vs_torch.py` benchmark scripts: timing a PyTorch call, running a
criterion bench with a thread count and reading its medians, and printing the ratio table."""
import json
import os
import platform
import statistics
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def median_ms(call, runs, warmup=3):
    """Median wall time of `call()` in ms over `runs` calls, after `warmup` untimed ones."""
    for _ in range(warmup):
        call()
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        call()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1e3


def criterion_medians(bench, threads, groups):
    """Runs `cargo bench --bench <bench>` with `RAYON_NUM_THREADS=threads`, then reads the
    median of every function of each criterion group `"<bench> <g>"` for `g` in `groups`:
    `{(g, function name with spaces): ms}`. Honours `CARGO_TARGET_DIR`."""
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    subprocess.run(
        ["cargo", "bench", "-p", "torchless-benches", "--bench", bench, "--", "--noplot"],
        cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL,
    )
    crit = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "criterion")
    out = {}
    for g in groups:
        group = os.path.join(crit, f"{bench} {g}")
        for fn in sorted(os.listdir(group)):
            est = os.path.join(group, fn, "new", "estimates.json")
            if os.path.exists(est):
                with open(est) as f:
                    ns = json.load(f)["median"]["point_estimate"]
                out[(g, fn.replace("_", " "))] = ns / 1e6
    return out


def print_ratio_table(ours, theirs, threads):
    """The markdown table of torchless and PyTorch medians (ms) and their ratio, keyed like
    `criterion_medians`; rows with no PyTorch time show dashes."""
    import torch

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"threads: {threads}; torch {torch.__version__}\n")
    print("| model | what | torchless ms | PyTorch eager ms | torchless / PyTorch |")
    print("|---|---|---|---|---|")
    for key in sorted(ours):
        t = theirs.get(key)
        print(f"| {key[0]} | {key[1]} | {ours[key]:.1f} | {t:.1f} | {ours[key] / t:.2f} |" if t else
              f"| {key[0]} | {key[1]} | {ours[key]:.1f} | - | - |")
