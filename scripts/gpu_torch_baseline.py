#!/usr/bin/env python3
"""PyTorch eager baseline for the GPU check (dev-only; runs on the GPU machine's own torch).

Reads the benchmark cases listed by `gpu_kernels --list` (one JSON spec per case, written by
benches/cases/*.rs, which document each field) and times the same computation in PyTorch eager on
the same card: CUDA events around each call, L2 flushed in between, median of 30 after 5 warm-ups.
Also measures the device-to-device copy bandwidth of a 1 GiB tensor. Prints
{"copy_gbps": ..., "cases": [{"case": spec, "us": median}, ...]} on stdout.

Without CUDA (a dry run on a CPU machine) it runs every case once on the CPU to check the
builders and prints no timings.
"""
import json
import statistics
import sys

import torch
import torch.nn.functional as F

WARMUP, ITERS = 5, 30
DEV = "cuda" if torch.cuda.is_available() else "cpu"
DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def seeded(shape, seed, lo, hi, dtype):
    g = torch.Generator(device=DEV).manual_seed(seed)
    return (torch.rand(shape, generator=g, device=DEV) * (hi - lo) + lo).to(dtype)


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
    if op.startswith("bias_"):
        shape = c["shape"]
        x, b = seeded(shape, 1, -2, 2, dt), seeded([shape[-1]], 2, -1, 1, dt)
        act = {
            "bias_gelu_erf": F.gelu,
            "bias_gelu_tanh": lambda v: F.gelu(v, approximate="tanh"),
            "bias_relu": torch.relu,
            "bias_silu": F.silu,
        }[op]
        return lambda: act(x + b)
    if op == "swiglu":
        g, u = seeded(c["shape"], 1, -2, 2, dt), seeded(c["shape"], 2, -2, 2, dt)
        return lambda: F.silu(g) * u
    if op == "swiglu_packed":
        x = seeded(c["shape"], 1, -2, 2, dt)

        def packed():
            g, u = x.chunk(2, -1)
            return F.silu(g) * u

        return packed
    if op == "masked_softmax":
        b_, h_, tq, tk = c["shape"]
        s_ = seeded(c["shape"], 1, -4, 4, dt)
        scale = c["scale"]
        add = None
        if c.get("mask"):
            valid = c["mask"]["valid_keys"]
            m = torch.zeros(b_, tk, device=DEV, dtype=dt)
            m[:, valid:] = float("-inf")
            add = m[:, None, None, :]
        causal = None
        if c.get("causal"):
            i = torch.arange(tq, device=DEV)[:, None]
            j = torch.arange(tk, device=DEV)[None, :]
            causal = j > i + (tk - tq)

        def softmax():
            v = s_ * scale
            if add is not None:
                v = v + add
            if causal is not None:
                v = v.masked_fill(causal, float("-inf"))
            return torch.softmax(v, dim=-1)

        return softmax
    if op == "rope_qk":
        q, k = seeded(c["q"], 1, -1, 1, dt), seeded(c["k"], 2, -1, 1, dt)
        d, t, off = c["q"][-1], c["q"][2], c["offset"]
        inv = 1.0 / (c["theta"] ** (torch.arange(0, d, 2, device=DEV, dtype=torch.float32) / d))
        freqs = torch.arange(c["max_positions"], device=DEV, dtype=torch.float32)[:, None] * inv
        emb = torch.cat((freqs, freqs), -1)
        cos_t, sin_t = emb.cos().to(dt), emb.sin().to(dt)

        def rot(x):
            if c["layout"] == "half_split":
                x1, x2 = x[..., : d // 2], x[..., d // 2 :]
                return torch.cat((-x2, x1), -1)
            x1, x2 = x[..., 0::2], x[..., 1::2]
            return torch.stack((-x2, x1), -1).flatten(-2)

        def rope():
            cos, sin = cos_t[off : off + t], sin_t[off : off + t]
            if c["layout"] != "half_split":
                cos = cos[:, : d // 2].repeat_interleave(2, -1)
                sin = sin[:, : d // 2].repeat_interleave(2, -1)
            return q * cos + rot(q) * sin, k * cos + rot(k) * sin

        return rope
    if op == "bert_embeddings":
        b_, t = c["ids"]
        hdim, vocab = c["hidden"], c["vocab"]
        word = seeded([vocab, hdim], 1, -1, 1, dt)
        pos = seeded([c["max_positions"], hdim], 2, -1, 1, dt)
        typ = seeded([c["type_vocab"], hdim], 3, -1, 1, dt)
        w, bias = seeded([hdim], 4, 0.5, 1.5, dt), seeded([hdim], 5, -0.5, 0.5, dt)
        i = torch.arange(b_ * t).reshape(b_, t)
        ids_host = (i * 7919 + 13) % vocab
        types_host = (torch.arange(t)[None, :] >= t // 2).long().expand(b_, t).contiguous()
        positions = torch.arange(c["offset"], c["offset"] + t, device=DEV)

        def emb():
            ids, types = ids_host.to(DEV), types_host.to(DEV)
            x = word[ids] + typ[types] + pos[positions][None]
            return F.layer_norm(x, (hdim,), w, bias, c["eps"])

        return emb
    if op in ("flash_attention", "decode_attention"):
        bq, hq, tq, d = c["q"]
        _, hk, tk, _ = c["kv"]
        q = seeded(c["q"], 1, -1, 1, dt)
        k, v = seeded(c["kv"], 2, -1, 1, dt), seeded(c["kv"], 3, -1, 1, dt)
        if op == "decode_attention":
            k, v = k[:, :, : c["len"]], v[:, :, : c["len"]]
            tk = c["len"]
        scale = c["scale"]
        mask = None
        if c.get("causal"):
            i = torch.arange(tq, device=DEV)[:, None]
            j = torch.arange(tk, device=DEV)[None, :]
            mask = torch.zeros(tq, tk, device=DEV, dtype=dt).masked_fill(j > i + (tk - tq), float("-inf"))
        if c.get("key_lengths"):
            m = torch.zeros(bq, 1, 1, tk, device=DEV, dtype=dt)
            for bi, n in enumerate(c["key_lengths"]):
                m[bi, :, :, n:] = float("-inf")
            mask = m if mask is None else mask + m
        rep = hq // hk

        def attn():
            kk = k.repeat_interleave(rep, 1) if rep > 1 else k
            vv = v.repeat_interleave(rep, 1) if rep > 1 else v
            s_ = q @ kk.transpose(-1, -2) * scale
            if mask is not None:
                s_ = s_ + mask
            return torch.softmax(s_, dim=-1) @ vv

        return attn
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
        # Dry run: build and run every case once on the CPU (so the builders are checked),
        # report no timings.
        n = 0
        for c in cases:
            build(c)()
            n += 1
        print(f"torch sees no CUDA device: {n} cases built and run once on the CPU, no timings (dry run)",
              file=sys.stderr)
        json.dump({"copy_gbps": None, "cases": []}, sys.stdout)
        return
    flush = torch.zeros(32 << 20, device=DEV)
    big = torch.zeros(256 << 20, device=DEV)
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
