#!/usr/bin/env python3
"""The graph runtime (`torchless run`) on the CPU, next to the hand-written models and PyTorch
eager, in one invocation.

Writes, with random weights: `transformers.BertModel` in all-MiniLM-L6-v2 and bert-base shapes
and a torchvision ResNet-50, each as `torch.export` program (`program.pt2`, dynamic batch and
length) and as a state_dict (`model.safetensors`, the hand-written path). Runs the criterion
bench `benches/graph` on them (graph and hand-written forwards at batch 1 and 32, MiniLM
program load = mmap + compile), then times the same PyTorch modules eager
(`torch.inference_mode`) with the same thread count, and prints a markdown table of medians and
ratios for benches/RESULTS.md.

Dev-only (needs torch, torchvision, transformers, safetensors):
    python benches/graph_vs_torch.py [--threads N] [--dir DIR]
"""
import argparse
import json
import os
import platform
import sys
import tempfile

from side_by_side import criterion_medians, median_ms

BERTS = [("minilm-l6", 384, 6, 12, 1536), ("bert-base", 768, 12, 12, 3072)]


def fresh_models():
    """The PyTorch modules alone (for timing: the weights' values do not change the time)."""
    import torchvision
    from transformers import BertConfig, BertModel

    models = {}
    for name, h, layers, heads, inter in BERTS:
        cfg = BertConfig(vocab_size=30522, hidden_size=h, num_hidden_layers=layers,
                         num_attention_heads=heads, intermediate_size=inter,
                         max_position_embeddings=512, attn_implementation="sdpa")
        models[name] = BertModel(cfg, add_pooling_layer=False).eval()
    models["resnet50"] = torchvision.models.resnet50().eval()
    return models


def write_models(root):
    import torch
    import torchvision
    from safetensors.torch import save_file
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    models = {}
    for name, h, layers, heads, inter in BERTS:
        cfg = BertConfig(vocab_size=30522, hidden_size=h, num_hidden_layers=layers,
                         num_attention_heads=heads, intermediate_size=inter,
                         max_position_embeddings=512, attn_implementation="sdpa")
        model = BertModel(cfg, add_pooling_layer=False).eval()
        d = os.path.join(root, name)
        os.makedirs(d, exist_ok=True)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                  os.path.join(d, "model.safetensors"))
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg.to_dict(), f)

        class Wrap(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, input_ids, attention_mask):
                return self.m(input_ids=input_ids, attention_mask=attention_mask,
                              return_dict=False)[0]

        ids = torch.randint(0, 30522, (2, 16))
        b = torch.export.Dim("batch", min=1, max=64)
        s = torch.export.Dim("seq", min=2, max=512)
        ep = torch.export.export(Wrap(model), (ids, torch.ones_like(ids)),
                                 dynamic_shapes=({0: b, 1: s}, {0: b, 1: s}))
        torch.export.save(ep, os.path.join(d, "program.pt2"))
        models[name] = model

    r50 = torchvision.models.resnet50().eval()
    with torch.no_grad():
        for m in r50.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    d = os.path.join(root, "resnet50")
    os.makedirs(d, exist_ok=True)
    save_file({k: v.contiguous() for k, v in r50.state_dict().items()},
              os.path.join(d, "model.safetensors"))
    b = torch.export.Dim("batch", min=1, max=64)
    ep = torch.export.export(r50, (torch.randn(2, 3, 224, 224),), dynamic_shapes=({0: b},))
    torch.export.save(ep, os.path.join(d, "program.pt2"))
    models["resnet50"] = r50
    return models


def torch_times(models, threads):
    import torch

    torch.set_num_threads(threads)
    out = {}
    with torch.inference_mode():
        for name, *_ in BERTS:
            m = models[name]
            for b in (1, 32):
                ids = (torch.arange(b * 128).reshape(b, 128) * 7919) % 30522
                mask = torch.ones_like(ids)
                out[(name, f"{b}x128")] = median_ms(
                    lambda: m(input_ids=ids, attention_mask=mask), 20 if b == 1 else 5)
        for b in (1, 32):
            x = ((torch.arange(b * 3 * 224 * 224) * 7919) % 1000).float().reshape(b, 3, 224, 224) / 500 - 1
            out[("resnet50", f"{b}x3x224x224")] = median_ms(
                lambda: models["resnet50"](x), 10 if b == 1 else 3)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--dir", help="where to write the models (default: a temp dir)")
    ap.add_argument("--reuse", action="store_true",
                    help="--dir already holds the models of an earlier run: do not export again")
    args = ap.parse_args()
    import torch

    root = args.dir or tempfile.mkdtemp(prefix="torchless-graph-bench-")
    models = fresh_models() if args.reuse else write_models(root)
    os.environ["TORCHLESS_GRAPH_BENCH_DIR"] = root
    ours = criterion_medians("graph", args.threads, [n for n, *_ in BERTS] + ["resnet50"])
    theirs = torch_times(models, args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"threads: {args.threads}; torch {torch.__version__}\n")
    print("| model | shape | graph ms | hand-written ms | PyTorch eager ms | graph / hand | graph / PyTorch |")
    print("|---|---|---|---|---|---|---|")
    for (model, shape), t in sorted(theirs.items()):
        g = ours.get((model, f"graph {shape}"))
        h = ours.get((model, f"hand {shape}"))
        if g is None or h is None:
            continue
        print(f"| {model} | {shape} | {g:.1f} | {h:.1f} | {t:.1f} | {g / h:.2f} | {g / t:.2f} |")
    load = ours.get(("minilm-l6", "load"))
    if load is not None:
        print(f"\nMiniLM program load (mmap + compile): {load:.1f} ms")


if __name__ == "__main__":
    sys.exit(main())
